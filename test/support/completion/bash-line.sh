# complete_line "castra ssh ": sets what bash sets for a line typed up to its end, calls the function that
# `complete -F` registered for castra, and prints the candidates it left in COMPREPLY on one line.
complete_line() {
  COMP_LINE=$1
  COMP_POINT=${#1}
  read -ra COMP_WORDS <<< "$1"
  [[ $1 == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  local function_name
  function_name=$(complete -p castra | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
  "$function_name"
  echo "${COMPREPLY[*]}"
}
