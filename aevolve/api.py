"""Keep `aevolve.propose(...)`, `aevolve.gate(...)` ... callable.

The public API names its functions after the modules that hold them. Importing
a submodule (`import aevolve.propose`, which aevolve itself does) rebinds the
package attribute to the module, hiding the function. Each such module calls
`callable_module` so that calling the module calls its function.
"""

from __future__ import annotations

import sys
import types


def callable_module(module_name: str, function) -> None:
    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    CallableModule.__doc__ = function.__doc__
    sys.modules[module_name].__class__ = CallableModule
