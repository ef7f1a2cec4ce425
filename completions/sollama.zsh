#compdef sollama

_sollama_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _SOLLAMA_COMPLETE=complete_zsh sollama)
}

compdef _sollama_completion sollama
