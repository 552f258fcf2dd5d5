"""``python -m flotilla`` / ``flotilla-operator``: run the operator against the hub in KUBECONFIG."""

from __future__ import annotations

import sys


def main() -> int:
    import kopf.cli

    args = ["run", "-m", "flotilla.operator", "--all-namespaces", "--standalone", *sys.argv[1:]]
    try:
        kopf.cli.main(args=args, standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
