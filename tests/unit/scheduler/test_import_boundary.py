"""The scheduler core must not import kopf, kubernetes, prometheus_client or flotilla.api."""

import ast
import subprocess
import sys
from pathlib import Path

import flotilla.scheduler

FORBIDDEN = ("kopf", "kubernetes", "prometheus_client", "flotilla.api")
PACKAGE = Path(flotilla.scheduler.__file__).parent


def test_import_with_forbidden_modules_poisoned() -> None:
    code = (
        "import sys\n"
        f"for name in {FORBIDDEN!r}:\n"
        "    sys.modules[name] = None\n"
        "import flotilla.scheduler, flotilla.scheduler.replay, flotilla.scheduler.plugins\n"
        "import pkgutil, importlib\n"
        "for m in pkgutil.walk_packages(flotilla.scheduler.__path__, 'flotilla.scheduler.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_no_forbidden_import_statements() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
