# Stand-ins for the compsys functions castra's zsh script calls (compsys itself needs a terminal): they
# print what they were handed, so a test can read it.
compdef() { :; }
_describe() { print -l -- "${(@P)4}"; }
_files() { print FILES; }
