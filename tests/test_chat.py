"""The chat session: command parsing (pure), multi-line input, the conversation, transcripts, piped stdin."""

from __future__ import annotations

import json
import stat

import pytest

from ollama_ops.client.sync import OllamaClient
from ollama_ops.errors import ModelNotFound, SollamaError, UsageError
from ollama_ops.services.chat import ChatSession, Command, Multiline, chats_dir, parse_command, read_transcript
from ollama_ops.services.generate import UsagePolicy


@pytest.mark.parametrize("line, kind, arg", [
    ("", "empty", ""),
    ("   ", "empty", ""),
    ("hello", "message", "hello"),
    ("  spaced  ", "message", "  spaced  "),
    ("/help", "help", ""),
    ("/?", "help", ""),
    ("/bye", "bye", ""),
    ("/exit", "bye", ""),
    ("/BYE", "bye", ""),
    ("/clear", "clear", ""),
    ("/show", "show", ""),
    ("/stats", "stats", ""),
    ("/model smollm2:135m", "model", "smollm2:135m"),
    ("/system You are terse.", "system", "You are terse."),
    ("/set system Be kind", "system", "Be kind"),
    ("/set verbose", "verbose", "on"),
    ("/set quiet", "verbose", "off"),
    ("/unset temperature", "unset", "temperature"),
    ("/save t1", "save", "t1"),
    ("/load my-chat.2", "load", "my-chat.2"),
])
def test_parse_command_kinds(line, kind, arg):
    cmd = parse_command(line)
    assert (cmd.kind, cmd.arg) == (kind, arg)
    assert cmd.error is None


@pytest.mark.parametrize("line, options", [
    ("/set temperature 0.2", {"temperature": 0.2}),
    ("/set parameter top_k 20", {"top_k": 20}),
    ("/set num_ctx 4096", {"num_ctx": 4096}),
    ("/set stop </s>", {"stop": ["</s>"]}),
    ("/set use_mmap false", {"use_mmap": False}),
])
def test_parse_set_types_the_value(line, options):
    cmd = parse_command(line)
    assert cmd.kind == "set" and cmd.options == options


@pytest.mark.parametrize("line, error", [
    ("/set", "usage: /set KEY VALUE"),
    ("/set temperature", "usage: /set KEY VALUE"),
    ("/set temprature 1", "did you mean 'temperature'"),
    ("/set top_k lots", "option 'top_k' must be int"),
    ("/model", "usage: /model NAME"),
    ("/model a b", "usage: /model NAME"),
    ("/system", "usage: /system TEXT"),
    ("/save", "usage: /save NAME"),
    ("/save ../etc/passwd", "invalid chat name"),
    ("/load a/b", "invalid chat name"),
    ("/clear now", "/clear takes no argument"),
    ("/frobnicate", "unknown command '/frobnicate'"),
])
def test_parse_command_errors(line, error):
    cmd = parse_command(line)
    assert cmd.kind == "invalid"
    assert error in (cmd.error or "")


@pytest.mark.parametrize("lines, expected", [
    (['plain'], "plain"),
    (['"""one line"""'], "one line"),
    (['"""', "a", "b", '"""'], "a\nb"),
    (['"""first', "second", 'third"""'], "first\nsecond\nthird"),
    (['"""', "", "  indented", '"""'], "\n  indented"),
])
def test_multiline_collects_quoted_blocks(lines, expected):
    block = Multiline()
    results = [block.feed(line) for line in lines]
    assert results[-1] == expected
    assert all(r is None for r in results[:-1])
    assert not block.active


@pytest.fixture
def client(stub):
    with OllamaClient(stub.url) as c:
        yield c


def quiet() -> UsagePolicy:
    return UsagePolicy(command="chat", record=lambda row: None)


def test_conversation_is_kept_in_context_with_options_and_system(stub, client):
    stub.configure(tokens=2, token_text="ok ")
    session = ChatSession("stub-model", system="be terse", options={"seed": 3})
    shown: list[str] = []
    session.ask(client, "first", on_text=shown.append, usage=quiet())
    session.execute(parse_command("/set temperature 0.2"), client)
    session.ask(client, "second", usage=quiet())
    body = [b for m, p, b in stub.requests if p == "/api/chat"][-1]
    assert body["messages"] == [{"role": "system", "content": "be terse"}, {"role": "user", "content": "first"},
                                {"role": "assistant", "content": "ok ok "}, {"role": "user", "content": "second"}]
    assert body["options"] == {"seed": 3, "temperature": 0.2}
    assert shown == ["ok ", "ok "]
    assert session.last is not None and session.last.timings.eval_count == 2


def test_interrupted_answer_is_kept_marked_and_sent_without_the_marker(stub, client):
    stub.configure(tokens=10, token_text="x")
    session = ChatSession("stub-model")
    seen: list[str] = []

    def stop_after_two(text: str) -> None:
        seen.append(text)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.ask(client, "long one", on_text=stop_after_two, usage=quiet())
    assert session.messages[-1] == {"role": "assistant", "content": "xx", "interrupted": True}
    assert session.request().messages[-1] == {"role": "assistant", "content": "xx"}


def test_failure_before_any_text_drops_the_question(stub, client):
    stub.configure(status=503)
    session = ChatSession("stub-model")
    with pytest.raises(SollamaError, match="server busy"):
        session.ask(client, "hello", usage=quiet())
    assert session.messages == []


def test_failure_mid_answer_keeps_the_partial_answer_with_the_error(stub, client):
    stub.configure(tokens=5, token_text="y", error_after=2)
    session = ChatSession("stub-model")
    with pytest.raises(SollamaError):
        session.ask(client, "hello", usage=quiet())
    last = session.messages[-1]
    assert last["content"] == "yy" and last["interrupted"] is True and "stub fault" in last["error"]


def test_commands_change_the_session(stub, client):
    session = ChatSession("stub-model", options={"temperature": 0.5})
    session.ask(client, "hi", usage=quiet())
    assert session.execute(parse_command("/stats"), client).data is session.last
    assert session.execute(parse_command("/system new"), client).kind == "info" and session.system == "new"
    session.execute(parse_command("/unset temperature"), client)
    assert session.options == {}
    with pytest.raises(UsageError, match="not set"):
        session.execute(parse_command("/unset temperature"), client)
    view = session.execute(parse_command("/show"), client).data
    assert view.details.architecture == "llama" and view.system == "new" and view.messages == 2
    session.execute(parse_command("/clear"), client)
    assert session.messages == [] and session.last is None
    assert session.execute(parse_command("/stats"), client).text == "no finished answer yet"
    assert session.execute(parse_command("/bye"), client).kind == "exit"
    with pytest.raises(UsageError, match="unknown command"):
        session.execute(parse_command("/nope"), client)


def test_switching_to_a_missing_model_names_the_installed_ones(stub, client):
    session = ChatSession("stub-model")
    with pytest.raises(ModelNotFound, match="installed: stub-model:latest"):
        session.execute(parse_command("/model other"), client)
    assert session.model == "stub-model"


def test_transcripts_are_private_and_round_trip(stub, client):
    session = ChatSession("stub-model", system="s", options={"top_k": 3})
    session.ask(client, "hi", usage=quiet())
    auto = session.save()
    assert auto.name.startswith("chat-") and auto.exists()
    saved = session.save_as("t1")
    assert not auto.exists()  # the auto-named file moves to the chosen name
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(chats_dir().stat().st_mode) == 0o700
    data = json.loads(saved.read_text())
    assert data["model"] == "stub-model" and data["options"] == {"top_k": 3} and len(data["messages"]) == 2
    other = ChatSession("x")
    other.execute(parse_command("/load t1"), client)
    assert (other.model, other.system, other.options, other.messages) == ("stub-model", "s", {"top_k": 3},
                                                                           session.messages)


def test_loading_missing_or_damaged_transcripts_fails_in_one_line(isolated):
    with pytest.raises(SollamaError, match="no saved chat 'gone'"):
        read_transcript("gone")
    chats_dir(create=True).joinpath("bad.json").write_text("{not json")
    with pytest.raises(SollamaError, match="cannot be read"):
        read_transcript("bad")
    chats_dir().joinpath("odd.json").write_text('{"messages": [1, 2]}')
    with pytest.raises(SollamaError, match="damaged"):
        read_transcript("odd")


def test_invalid_command_object_raises_usage_error(client):
    with pytest.raises(UsageError, match="boom"):
        ChatSession("m").execute(Command("invalid", error="boom"), client)


# -- the CLI with piped stdin --------------------------------------------------------------------------------------

def test_piped_chat_prints_the_answer_verbatim_and_saves(sollama, stub, isolated):
    stub.configure(tokens=3, token_text=["[bold]", "x", "[/bold]"])
    result = sollama("--host", stub.host, "chat", "-m", "stub-model", input="line one\nline two\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "[bold]x[/bold]\n"
    body = [b for m, p, b in stub.requests if p == "/api/chat"][-1]
    assert body["messages"] == [{"role": "user", "content": "line one\nline two\n"}]
    files = list((isolated / "data" / "chats").glob("chat-*.json"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_piped_chat_resumes_a_saved_transcript(sollama, stub):
    stub.configure(tokens=1, token_text="a")
    session = ChatSession("stub-model", name="t2")
    session.messages = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "before"}]
    session.save()
    result = sollama("--host", stub.host, "chat", "--resume", "t2", input="and now?")
    assert result.exit_code == 0, result.output
    body = [b for m, p, b in stub.requests if p == "/api/chat"][-1]
    assert [m["content"] for m in body["messages"]] == ["earlier", "before", "and now?"]
    assert len(read_transcript("t2")["messages"]) == 4


@pytest.mark.parametrize("args, stdin, message", [
    ((), "hi", "name a model with -m MODEL"),
    (("-m", "stub-model"), "  \n", "no message on stdin"),
    (("--resume", "nothere"), "hi", "no saved chat 'nothere'"),
])
def test_piped_chat_errors(sollama, stub, args, stdin, message):
    result = sollama("--host", stub.host, "chat", *args, input=stdin)
    assert result.exit_code in (1, 2), result.output
    assert message in result.stderr


@pytest.mark.ollama
def test_piped_chat_against_the_real_daemon(sollama, ollama):
    from ollama_ops.edges.store import Store

    result = sollama("--host", ollama.host, "chat", "-m", ollama.model, "--max-tokens", "8", "--seed", "1",
                     "--temperature", "0", "--verbose", input="Say hi")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() and result.stdout.endswith("\n")
    assert "eval count:" in result.stderr
    with Store() as store:
        rows = store.usage_rows()
    assert [(r.command, r.model, r.outcome) for r in rows] == [("chat", ollama.model, "ok")]
    assert 0 < rows[0].eval_tokens <= 8
