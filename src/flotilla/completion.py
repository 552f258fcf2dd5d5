"""Shell completion for ``kubectl-flotilla``: commands, flags, choices, contexts and cluster names.

``kubectl-flotilla __complete WORD... PARTIAL`` answers in cobra's protocol (one candidate per
line, then ``:<directive>``), which is what kubectl asks a plugin's ``kubectl_complete-flotilla``
executable for (kubectl 1.26+), and what the scripts of ``kubectl-flotilla completion bash|zsh``
call. Candidates come from the argparse parser, so they never go stale; MemberCluster names (for
``cordon``, ``uncordon``, ``unjoin``, ``join``, ``move --to``) and kubeconfig contexts are looked
up best effort (a hub that does not answer within 3 s completes nothing, silently).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

DIRECTIVE_DEFAULT = 0
"""Cobra's ShellCompDirectiveDefault: the shell may complete file names."""
DIRECTIVE_NO_FILES = 4
"""Cobra's ShellCompDirectiveNoFileComp."""

FILE_OPTIONS = ("--kubeconfig", "--cluster-kubeconfig", "--fleet", "--workdir")
CONTEXT_OPTIONS = ("--context", "--cluster-context")
CLUSTER_COMMANDS = ("cordon", "uncordon", "join", "unjoin")
CLUSTER_OPTIONS = ("--to",)
"""Options whose value is a MemberCluster name (``move --to``)."""

Lookup = Callable[[argparse.Namespace], list[str]]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings}


def _long_names(parser: argparse.ArgumentParser) -> list[str]:
    """Each flag once, by its first long spelling."""
    names = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings:
            continue
        longs = [o for o in action.option_strings if o.startswith("--")]
        names.append(longs[0] if longs else action.option_strings[0])
    return names


def complete(
    root: argparse.ArgumentParser,
    words: Sequence[str],
    clusters: Lookup = lambda _a: [],
    contexts: Lookup = lambda _a: [],
) -> tuple[list[str], int]:
    """Candidates for the last of ``words`` (the words after the program name; the last may be
    empty) and the cobra directive."""
    *done, partial = list(words) or [""]
    parser, path = root, list[str]()
    seen: dict[str, str] = {}
    positionals = 0
    expects: argparse.Action | None = None
    for word in done:
        if expects is not None:
            seen[expects.dest] = word
            expects = None
            continue
        if word.startswith("-"):
            flag, _, value = word.partition("=")
            action = _options(parser).get(flag)
            if action is not None and action.nargs != 0 and not value:
                expects = action
            continue
        sub = _subcommands(parser)
        if word in sub:
            parser, path = sub[word], [*path, word]
        else:
            positionals += 1
    namespace = argparse.Namespace(**seen)
    if expects is not None:
        if any(o in FILE_OPTIONS for o in expects.option_strings):
            return [], DIRECTIVE_DEFAULT
        if any(o in CONTEXT_OPTIONS for o in expects.option_strings):
            found = contexts(namespace)
        elif any(o in CLUSTER_OPTIONS for o in expects.option_strings):
            found = clusters(namespace)
        elif expects.choices:
            found = [str(c) for c in expects.choices]
        else:
            found = []
        return [c for c in found if c.startswith(partial)], DIRECTIVE_NO_FILES
    if partial.startswith("-"):
        return [o for o in _long_names(parser) if o.startswith(partial)], DIRECTIVE_NO_FILES
    sub = _subcommands(parser)
    if sub:
        primary: dict[int, str] = {}  # each command once, by its name (not its aliases)
        for name, child in sub.items():
            primary.setdefault(id(child), name)
        visible = list(primary.values())
        return [n for n in visible if n.startswith(partial)], DIRECTIVE_NO_FILES
    if path and path[-1] in CLUSTER_COMMANDS and positionals == 0:
        return [n for n in clusters(namespace) if n.startswith(partial)], DIRECTIVE_NO_FILES
    return [], DIRECTIVE_NO_FILES


def hub_clusters(hub: Callable[[argparse.Namespace], Any]) -> Lookup:
    """MemberCluster names from the hub ``hub(args)`` reaches; nothing when it does not answer."""

    def lookup(args: argparse.Namespace) -> list[str]:
        from flotilla import kube
        from flotilla.api import GROUP_VERSION

        wanted = argparse.Namespace(
            kubeconfig=getattr(args, "kubeconfig", None), context=getattr(args, "context", None)
        )
        try:
            api = hub(wanted)
            api.configuration.retries = 0
            items = kube.request(api, "GET", f"/apis/{GROUP_VERSION}/memberclusters", timeout=3.0)
        except Exception:  # completion must never fail loudly
            return []
        return sorted(str(i["metadata"]["name"]) for i in (items or {}).get("items") or [])

    return lookup


def kubeconfig_contexts(path: Callable[[argparse.Namespace], str]) -> Lookup:
    """Context names of the kubeconfig ``path(args)`` picks (``--cluster-kubeconfig`` too)."""

    def lookup(args: argparse.Namespace) -> list[str]:
        from kubernetes import config

        try:
            file = getattr(args, "cluster_kubeconfig", None) or path(
                argparse.Namespace(kubeconfig=getattr(args, "kubeconfig", None))
            )
            contexts, _active = config.list_kube_config_contexts(config_file=file)
        except Exception:
            return []
        return sorted(str(c["name"]) for c in contexts or [])

    return lookup


def render(candidates: Sequence[str], directive: int) -> str:
    return "".join(f"{c}\n" for c in candidates) + f":{directive}\n"


BASH = """# kubectl-flotilla completion for bash (zsh: autoload -U +X bashcompinit && bashcompinit first)
_kubectl_flotilla() {
    local cur="${COMP_WORDS[COMP_CWORD]}" out directive
    out=$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:$COMP_CWORD}" 2>/dev/null) || return
    directive=$(printf '%s\\n' "$out" | tail -n 1)
    out=$(printf '%s\\n' "$out" | sed '$d')
    COMPREPLY=( $(compgen -W "$out" -- "$cur") )
    if [[ ${#COMPREPLY[@]} -eq 0 && "$directive" == ":0" ]]; then
        COMPREPLY=( $(compgen -f -- "$cur") )
    fi
}
complete -F _kubectl_flotilla kubectl-flotilla flotilla
"""

ZSH = "autoload -U +X bashcompinit && bashcompinit\n" + BASH


def script(shell: str) -> str:
    return {"bash": BASH, "zsh": ZSH}[shell]
