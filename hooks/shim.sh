#!/bin/sh
# aevolve-managed hook (@HOOK@): written by `aevolve hooks install`, removed by
# `aevolve hooks uninstall`. Do not edit: put your own hook in @HOOK@.local,
# which aevolve runs first (its failure fails this hook).
py=@PYTHON@
if [ -x "$py" ]; then
    exec "$py" -m aevolve hook run --chain "$0.local" @HOOK@ "$@"
fi
if command -v aevolve >/dev/null 2>&1; then
    exec aevolve hook run --chain "$0.local" @HOOK@ "$@"
fi
echo "aevolve: cannot run the @HOOK@ hook: $py is gone and no aevolve is on PATH;" >&2
echo "aevolve: reinstall it with \`aevolve hooks install\` (or \`git ... --no-verify\` to skip it once)" >&2
exit 1
