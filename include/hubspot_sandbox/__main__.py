"""``python -m hubspot_sandbox``: run the sandbox in the foreground for demos and benchmarks."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .limits import TIERS
from .server import SandboxServer


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hubspot_sandbox", description="Local HubSpot-compatible API server.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", 8765)))
    ap.add_argument("--contacts", type=int, default=2000)
    ap.add_argument("--companies", type=int, default=300)
    ap.add_argument("--deals", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--extra-properties", type=int, default=5)
    ap.add_argument("--tier", choices=sorted(TIERS), default="professional")
    ap.add_argument("--no-rate-limits", action="store_true", help="switch all rate limits off")
    ap.add_argument("--search-lag-ms", type=int, default=0)
    ap.add_argument("--association-page-size", type=int, default=500)
    ap.add_argument("--no-search-body-limit", action="store_true", help="do not enforce the 3,000-char search body limit")
    ap.add_argument("--token", default=os.environ.get("HUBSPOT_SANDBOX_TOKEN"),
                    help="bearer token to accept (default: $HUBSPOT_SANDBOX_TOKEN or a random pat-na1-<uuid4>)")
    ap.add_argument("--token-file", default=os.path.join("var", "sandbox", "token"),
                    help="where to write the token (mode 0600); default var/sandbox/token")
    ap.add_argument("--recent-days", type=int, default=14,
                    help="also stamp people's edits over the last N days before start (0: only the seed, "
                         "which ends in 2025); default 14")
    ap.add_argument("--verbose", action="store_true", help="log every request")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    server = SandboxServer(
        a.host, a.port, token=a.token, token_file=a.token_file, verbose=a.verbose,
        rate_limits=False if a.no_rate_limits else {"tier": a.tier},
        seed=a.seed, contacts=a.contacts, companies=a.companies, deals=a.deals,
        extra_properties=a.extra_properties, search_lag_ms=a.search_lag_ms,
        association_page_size=a.association_page_size,
        search_body_limit=None if a.no_search_body_limit else 3000, recent_activity_days=max(0, a.recent_days),
    )
    server.start()
    print(f"HubSpot sandbox on {server.url} (seeded {a.contacts} contacts, {a.companies} companies, "
          f"{a.deals} deals in {time.perf_counter() - t0:.2f}s; rate limits "
          f"{'off' if a.no_rate_limits else a.tier}); token in {os.path.abspath(a.token_file)}", flush=True)
    recent = server.portal.recent_activity
    if recent:
        total = sum(sum(kinds.values()) for kinds in recent["changes"].values())
        print(f"Recent activity: {total} changes between {recent['first']} and {recent['last']} "
              f"(details: {server.url}/_sandbox/state; --recent-days 0 for the seed alone)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
