"""`sollama keys`: create, list, revoke and rotate the gateway's API keys (secrets shown once, stored hashed)."""

from __future__ import annotations

from typing import Annotated

import typer

from ollama_ops.cli.context import JsonOption, use

app = typer.Typer(help="Create, list, revoke and rotate the gateway's API keys (a secret is shown once, stored "
                       "only as a hash).", no_args_is_help=True)

NameArg = typer.Argument(metavar="NAME", help="The key's name (letters, digits, '.', '_', '-').")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="keys")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, NameArg],
    models: Annotated[list[str] | None, typer.Option("--models", "-m", metavar="PATTERN",
                                                     help="Models the key may use (repeatable; shell patterns "
                                                          "like 'llama3*'; default: all).")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="Tokens (prompt + output) per minute.")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", help="Requests at once.")] = None,
    daily_tokens: Annotated[int | None, typer.Option("--daily-tokens", help="Tokens per day.")] = None,
    priority: Annotated[int, typer.Option("--priority",
                                          help="Share of the queue against other keys (2 = twice the turns).")] = 1,
    admin: Annotated[bool, typer.Option("--admin", help="May manage models, read /metrics and the whole "
                                                        "/queue.")] = False,
    expires: Annotated[str | None, typer.Option("--expires", metavar="DURATION",
                                                help="Lifetime like 30d, 12h, 2w (default: never).")] = None,
    json: Annotated[bool, JsonOption] = False,
) -> None:
    """Create a key; its secret is printed once on stdout (store it now: only its hash is kept).

    Example: [bold]sollama keys create ci --models 'smollm2*' --rpm 60 --tpm 20000[/bold]
    """
    from ollama_ops.core.gateway.keys import parse_expires
    from ollama_ops.errors import UsageError
    from ollama_ops.fleet.admin import key_admin
    from ollama_ops.render.gateway import CreatedView, render_created

    obj = use(ctx, json=json)
    try:
        lifetime = parse_expires(expires) if expires else None
    except ValueError as exc:
        raise UsageError(f"--expires: {exc}") from exc
    created = key_admin(obj.settings).create(name, models=models, rpm=rpm, tpm=tpm, concurrency=concurrency,
                               daily_tokens=daily_tokens, priority=priority, admin=admin, expires_in=lifetime)
    obj.emit(CreatedView.of(created), render_created)


@app.command("list")
def list_keys(ctx: typer.Context, json: Annotated[bool, JsonOption] = False) -> None:
    """The keys (never their secrets): name, models, limits, priority, admin, created, expiry, state.

    Example: [bold]sollama keys list --json | jq -r '.keys[].name'[/bold]
    """
    from ollama_ops.fleet.admin import key_admin
    from ollama_ops.render.gateway import KeyListing, render_key_list

    obj = use(ctx, json=json)
    obj.emit(KeyListing.of(key_admin(obj.settings).list()), render_key_list)


@app.command("revoke")
def revoke(ctx: typer.Context, name: Annotated[str, NameArg], json: Annotated[bool, JsonOption] = False) -> None:
    """Revoke a key at once (a running gateway refuses it within a second).

    Example: [bold]sollama keys revoke ci[/bold]
    """
    from ollama_ops.fleet.admin import key_admin
    from ollama_ops.render.gateway import render_revoked

    obj = use(ctx, json=json)
    obj.emit(key_admin(obj.settings).revoke(name), render_revoked)


@app.command("rotate")
def rotate(ctx: typer.Context, name: Annotated[str, NameArg], json: Annotated[bool, JsonOption] = False) -> None:
    """Give a key a new secret (printed once); the old secret stops working, settings stay.

    Example: [bold]sollama keys rotate ci[/bold]
    """
    from ollama_ops.fleet.admin import key_admin
    from ollama_ops.render.gateway import CreatedView, render_created

    obj = use(ctx, json=json)
    obj.emit(CreatedView.of(key_admin(obj.settings).rotate(name)), render_created)
