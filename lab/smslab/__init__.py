"""The SMS 1.2 lab twin: a simulated site on this machine (see docs/LAB.md).

This package is the *world* the product is tested against, never part of the
product. Standard library only.
"""

__version__ = "1.0"
