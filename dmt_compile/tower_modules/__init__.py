"""Tower Modules: the nn.Modules a tower runs before the cross-host exchange (cores, wrappers, decoders)."""
from dmt_compile.tower_modules.cores import *  # noqa: F401,F403
from dmt_compile.tower_modules.cores import __all__  # noqa: F401
