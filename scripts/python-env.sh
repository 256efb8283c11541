# Source me (bash/zsh) after building: puts build/python on PYTHONPATH and
# makes `python3` the interpreter the huginn module was built for (Debian's
# /usr/bin/python3, which has NumPy) when another one (e.g. pyenv's) comes
# first on PATH.
#   source scripts/python-env.sh && python3 -c 'import huginn'
_huginn_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_huginn_py=$(sed -n 's/^Python3_EXECUTABLE:FILEPATH=//p' "$_huginn_root/build/CMakeCache.txt" 2>/dev/null)
[ -n "$_huginn_py" ] || _huginn_py=/usr/bin/python3
export PYTHONPATH="$_huginn_root/build/python${PYTHONPATH:+:$PYTHONPATH}"
if [ "$(command -v python3)" != "$_huginn_py" ]; then
  export PATH="$(dirname "$_huginn_py"):$PATH"
  hash -r 2>/dev/null
fi
unset _huginn_root _huginn_py
