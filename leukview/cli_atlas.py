"""``leukview atlas add`` and ``leukview atlas info``: a laboratory's own reference atlas.

``atlas add SESSION...`` takes the reviewer-confirmed cells of saved review
sessions (label = the reviewer's) into the laboratory's atlas of a model,
created the first time and tied to that model's sha256
(:mod:`leukview.core.atlas`); a cell already in it (the same crop) is not
added twice. ``atlas info [DIR]`` prints what an atlas holds.

Exit codes: 0 done, 1 something could not be read or added (named on
stderr; the other sessions are still added), 2 usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .core.errors import LeukViewError

if TYPE_CHECKING:
    from .core.atlas import Atlas
    from .core.models import Classifier, ModelEntry

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_SOURCE = "lab review"
DEFAULT_LICENCE = "internal use"

USAGE = """usage: leukview atlas add SESSION... [--atlas DIR] [--source NAME] [--licence TEXT] [--model NAME]
       leukview atlas info [DIR] [--json]"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``leukview atlas``."""
    parser = argparse.ArgumentParser(
        prog="leukview atlas",
        description="A laboratory's reference atlas of reviewed cells: the second opinion of "
        "the viewer's Similar cells panel and of `leukview analyze --similar`.",
        epilog="Exit codes: 0 done, 1 something could not be read or added, 2 usage error.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{add,info}")
    add = commands.add_parser(
        "add",
        help="add the reviewed cells of sessions",
        description="Add the reviewer-confirmed cells of review sessions (label = the review) to a "
        "laboratory atlas, created when missing and tied to the model that embeds them. A cell "
        "already in the atlas is not added again.",
    )
    add.add_argument("sessions", nargs="+", metavar="SESSION", help="<image>.leukview.json files (or their images)")
    add.add_argument("--atlas", type=Path, metavar="DIR",
                     help="the atlas folder (default: the lab atlas of the model in the user's data folder)")  # fmt: skip
    add.add_argument("--source", default=DEFAULT_SOURCE, metavar="NAME",
                     help="where the cells come from, e.g. the lab and period (default: %(default)r)")  # fmt: skip
    add.add_argument("--licence", default=DEFAULT_LICENCE, metavar="TEXT",
                     help="terms under which the cells' images may be shown (default: %(default)r)")  # fmt: skip
    add.add_argument("--attribution", default="", metavar="TEXT", help="recorded with a new source")
    add.add_argument("--name", default="", metavar="TEXT", help="the atlas's name, when it is created")
    add.add_argument("--model", metavar="NAME",
                     help="the model whose features embed the cells (default: the installed type model)")  # fmt: skip
    add.add_argument("--models-dir", type=Path, metavar="DIR", help="folder of installed models")
    info = commands.add_parser(
        "info",
        help="say what an atlas holds",
        description="Print an atlas's model, cells by label and by source, licences and size. Without "
        "DIR: every installed model's shipped atlas and the laboratory's.",
    )
    info.add_argument("folder", nargs="?", type=Path, metavar="DIR", help="an atlas folder, or a model folder")
    info.add_argument("--json", action="store_true", help="print the atlas's info as JSON")
    info.add_argument("--models-dir", type=Path, metavar="DIR", help="folder of installed models")
    return parser


def run_atlas(argv: Sequence[str], stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """``leukview atlas``; returns the exit code."""
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    if args.command == "add":
        return _add(args, stdout, stderr)
    if args.command == "info":
        return _info(args, stdout, stderr)
    stderr.write(USAGE + "\n")
    return EXIT_USAGE


# ---------------------------------------------------------------- add


def _type_model(entries: Sequence[ModelEntry], name: str | None) -> ModelEntry | None:
    """The model asked for, else the first usable one without a positive class that has features."""
    if name:
        return next((e for e in entries if e.matches(name)), None)
    usable = [e for e in entries if e.ok and e.spec is not None and e.spec.features_output]
    return next((e for e in usable if not e.spec or e.spec.role == "type"), usable[0] if usable else None)


def _session_file(path: Path) -> Path:
    """A session file named directly, or the saved session of an image (beside it, else in the data folder)."""
    from .core.document import default_sessions_folder, session_candidates
    from .core.session import SESSION_SUFFIX

    if path.name.endswith(SESSION_SUFFIX) or path.suffix.lower() == ".json":
        return path
    return next((p for p in session_candidates(path, default_sessions_folder()) if p.is_file()), path)


def _add_session(atlas: Atlas, classifier: Classifier, path: Path, args: argparse.Namespace) -> tuple[int, int, int]:
    """(reviewed, added, duplicates) of one session; LeukViewError when it cannot be read."""
    from .core.document import image_for
    from .core.io import image_info, read_image
    from .core.session import ImageMatch, load_session

    session_path = _session_file(path)
    session = load_session(session_path)
    reviewed = [c for c in session.analysis.cells if c.review.reviewed and c.review.label]
    if not reviewed:
        return 0, 0, 0
    image_path = Path(session.image_path) if session.image_path else image_for(session_path)
    if not image_path.is_file() and image_for(session_path).is_file():
        image_path = image_for(session_path)  # moved with its session
    if not image_path.is_file():
        raise LeukViewError(f"its image {image_path} is not there", session_path)
    info = image_info(image_path)
    match, problem = session.check_image(image_path, info.width, info.height)
    if match is not ImageMatch.SAME:
        raise LeukViewError(f"its image {image_path.name} is not the one reviewed ({problem})", session_path)
    image = read_image(image_path)
    result = atlas.add_cells(
        classifier, image, reviewed, [str(c.review.label) for c in reviewed],
        source=args.source, licence=args.licence, attribution=args.attribution,
        file=str(image_path), group=session_path.name,
    )  # fmt: skip
    return len(reviewed), len(result.added), len(result.duplicates)


def _add(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .core.atlas import ATLAS_FILE, Atlas, AtlasError
    from .core.models import ModelRegistry, load_entry
    from .core.similar import lab_atlas_dir

    prog = "leukview atlas add"
    if not args.source.strip():
        stderr.write(f"{prog}: error: --source must name where the cells come from\n")
        return EXIT_USAGE
    entries = ModelRegistry(args.models_dir).entries()
    entry = _type_model(entries, args.model)
    if entry is None or not entry.ok or entry.spec is None:
        what = f"model '{args.model}' is not installed or cannot be used" if args.model else "no usable model installed"
        installed = ", ".join(e.name for e in entries) or "none"
        stderr.write(f"{prog}: error: {what} (installed: {installed})\n")
        return EXIT_USAGE
    try:
        classifier = load_entry(entry)
    except LeukViewError as exc:
        stderr.write(f"{prog}: error: {exc}\n")
        return EXIT_USAGE
    if not classifier.spec.features_output:
        stderr.write(f"{prog}: error: model '{entry.name}' has no features output: it cannot embed cells\n")
        return EXIT_USAGE
    folder = args.atlas or lab_atlas_dir(classifier.spec.name)
    try:
        if (folder / ATLAS_FILE).is_file():
            atlas = Atlas.load(folder, classifier)
            created = False
        else:
            name = args.name or f"{args.source} atlas of {classifier.spec.name}"
            atlas = Atlas.create(folder, classifier, name=name,
                                 description="Reviewer-confirmed cells of review sessions (leukview atlas add).",
                                 build={"command": "leukview atlas add"})  # fmt: skip
            created = True
    except (AtlasError, OSError) as exc:
        stderr.write(f"{prog}: error: {exc}\n")
        return EXIT_FAILED
    if created:
        stdout.write(f"created atlas {folder} for {classifier.spec.name} {classifier.spec.version}\n")
    failed = 0
    total_added = total_dupes = 0
    for given in args.sessions:
        path = Path(given)
        try:
            reviewed, added, dupes = _add_session(atlas, classifier, path, args)
        except (LeukViewError, OSError, MemoryError) as exc:
            failed += 1
            reason = exc.reason if isinstance(exc, LeukViewError) else (getattr(exc, "strerror", None) or str(exc))
            stderr.write(f"{prog}: {path}: {reason or type(exc).__name__}\n")
            continue
        total_added += added
        total_dupes += dupes
        if not reviewed:
            stdout.write(f"{path}: no reviewed cell (nothing added)\n")
        else:
            stdout.write(f"{path}: {reviewed} reviewed cells: {added} added, {dupes} already in the atlas\n")
    labels = ", ".join(f"{k} {v}" for k, v in atlas.info()["by_label"].items()) or "empty"
    stdout.write(f"atlas {folder}: {len(atlas)} cells ({labels}); {total_added} added, {total_dupes} duplicates skipped\n")
    return EXIT_FAILED if failed else EXIT_OK


# ---------------------------------------------------------------- info


def _installed_sha(models_dir: Path | None) -> dict[str, tuple[str, str]]:
    from .core.models import ModelRegistry

    return {
        e.spec.name: ((e.spec.sha256 or "").lower(), e.spec.version)
        for e in ModelRegistry(models_dir).entries()
        if e.spec is not None
    }


def format_info(info: dict, installed: dict[str, tuple[str, str]] | None = None) -> str:
    """``Atlas.info()`` as text: model (and whether it is the installed version), counts, sources."""
    model = info["model"]
    lines = [f"{info['name']}", f"  folder:   {info['folder']}"]
    state = ""
    if installed is not None:
        sha, version = installed.get(model["name"], ("", ""))
        if not sha:
            state = " (not installed)"
        elif sha == model["sha256"]:
            state = " (the installed version)"
        else:
            state = f" (installed is {version}: no atlas for this model version)"
    lines.append(f"  model:    {model['name']} {model['version']} sha256 {model['sha256'][:12]}...{state}")
    lines.append(f"  cells:    {info['count']} ({info['dim']}-dimensional embeddings, "
                 f"{info['thumbnail_size']} px thumbnails, {info['size_bytes'] / 1e6:.1f} MB)")  # fmt: skip
    if info["description"]:
        lines.append(f"  about:    {info['description']}")
    width = max((len(k) for k in info["by_label"]), default=0)
    lines.append("  by label:")
    lines += [f"    {label:<{width}}  {count:>6}" for label, count in info["by_label"].items()] or ["    (none)"]
    lines.append("  by source:")
    for name, count in info["by_source"].items():
        source = info["sources"].get(name, {})
        lines.append(f"    {name}: {count} cells, licence {source.get('licence') or '?'}")
        if source.get("attribution"):
            lines.append(f"      attribution: {source['attribution']}")
        if source.get("note"):
            lines.append(f"      note: {source['note']}")
    if not info["by_source"]:
        lines.append("    (none)")
    index = info["index"]
    lines.append("  search:   " + ("exact (numpy)" if not index else
                                  f"{index['library']} {index['kind']}" + ("" if index.get("active") else
                                                                         " (not usable here: exact search)")))  # fmt: skip
    lines.append(f"  updated:  {info['updated']}")
    return "\n".join(lines)


def _info(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from .core.atlas import ATLAS_FILE, Atlas, AtlasError, default_atlas_dir
    from .core.models import ModelRegistry
    from .core.similar import lab_atlas_dir

    prog = "leukview atlas info"
    if args.folder is not None:
        folder = args.folder
        if not (folder / ATLAS_FILE).is_file() and (default_atlas_dir(folder) / ATLAS_FILE).is_file():
            folder = default_atlas_dir(folder)  # a model's folder: its shipped atlas
        folders = [folder]
    else:
        folders = []
        for entry in ModelRegistry(args.models_dir).entries():
            name = entry.spec.name if entry.spec is not None else entry.name
            folders += [f for f in (default_atlas_dir(entry.folder), lab_atlas_dir(name)) if (f / ATLAS_FILE).is_file()]
        if not folders:
            stderr.write(f"{prog}: no atlas found (none shipped with the installed models, no lab atlas yet)\n")
            return EXIT_FAILED
    installed = _installed_sha(args.models_dir)
    failed = 0
    infos = []
    for folder in folders:
        try:
            infos.append(Atlas.load(folder).info())
        except AtlasError as exc:
            failed += 1
            stderr.write(f"{prog}: {exc}\n")
    if args.json:
        stdout.write(json.dumps(infos[0] if args.folder is not None and infos else infos, indent=2) + "\n")
    else:
        stdout.write("\n\n".join(format_info(info, installed) for info in infos) + ("\n" if infos else ""))
    return EXIT_FAILED if failed else EXIT_OK
