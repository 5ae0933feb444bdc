"""A local HubSpot-compatible API server (the "sandbox") for the demo, tests and benchmarks.

Start it with ``python -m hubspot_sandbox`` or in-process with ``hubspot_sandbox.testing.run_sandbox``.
Never imported by the pipeline code.
"""

from .server import SandboxServer

__all__ = ["SandboxServer"]
