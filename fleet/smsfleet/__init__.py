"""The SSH fleet of the project's tests (docs/FLEET.md): SMS hosts as network,
mount and PID namespaces of this machine, each with its own sshd.

The fleet is the *world*, like the lab twin: the product never imports it.
Standard library only; root only.
"""
