import type { Shell } from "../commands/specs.js";

/**
 * The scripts `castra completion SHELL` prints. Each asks `castra __complete SHELL -- WORDS…` at every Tab,
 * so commands, flags and names come from the spec table and the project of the moment, never a stale copy.
 * An answer is one candidate per line, or the single line `:files` for the shell's own file completion.
 */

const BASH = `# castra completion for bash. Load it now:      source <(castra completion bash)
# or for every new shell:  castra completion bash > ~/.local/share/bash-completion/completions/castra
_castra() {
  local line=\${COMP_LINE:0:COMP_POINT} cur=\${COMP_WORDS[COMP_CWORD]} answer
  local -a words reply
  read -r -a words <<< "$line"
  [[ $line =~ [[:space:]]$ ]] && words+=("")
  while IFS= read -r answer; do reply+=("$answer"); done < <(command castra __complete bash -- "\${words[@]:1}" 2>/dev/null)
  COMPREPLY=()
  if [[ \${reply[0]-} == ":files" ]]; then
    compopt -o filenames 2>/dev/null
    while IFS= read -r answer; do COMPREPLY+=("$answer"); done < <(compgen -f -- "$cur")
  else
    COMPREPLY=("\${reply[@]}")
  fi
}
complete -F _castra castra
`;

const ZSH = `#compdef castra
# castra completion for zsh. Load it now:  source <(castra completion zsh)
# or for every new shell:  castra completion zsh > "\${fpath[1]}/_castra"  (then restart zsh)
_castra() {
  local -a reply
  reply=("\${(@f)$(command castra __complete zsh -- "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  if [[ "\${reply[1]}" == ":files" ]]; then
    _files
    return
  fi
  reply=(\${reply:#})
  (( \${#reply} )) && _describe -t values castra reply
}
if [[ "\${funcstack[1]}" == "_castra" ]]; then _castra "$@"; else compdef _castra castra; fi
`;

const FISH = `# castra completion for fish. Load it now:  castra completion fish | source
# or for every new shell:  castra completion fish > ~/.config/fish/completions/castra.fish
function __castra_complete
    set -l words (commandline -opc) (commandline -ct)
    set -l reply (command castra __complete fish -- $words[2..-1] 2>/dev/null)
    if test "$reply[1]" = ":files"
        __fish_complete_path (commandline -ct)
    else
        printf '%s\\n' $reply
    end
end
complete -c castra -f -a '(__castra_complete)'
`;

export const COMPLETION_SCRIPTS: Record<Shell, string> = { bash: BASH, zsh: ZSH, fish: FISH };
