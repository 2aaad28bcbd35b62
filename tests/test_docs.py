"""The commands and links in README.md and docs/*.md work.

Every `python -m mnist_runner ...` (or `mnist-runner ...`) command shown in a fenced code block
(`\\` continuations joined, a leading `$ ` dropped) or in an inline code span is parsed by Hydra's
own command-line parser and composed in-process with Hydra's compose API: no subprocess, no
training. A multirun (`-m`) is composed as jobs that use each swept value at least once. Each
composed config then goes through `validate.validate`, the checks a run makes before it loads any
data (the device check is skipped: the machine that runs the tests may lack a GPU). A command that
cannot compose by design goes into EXCEPTIONS with the reason.

Every relative link resolves to an existing file, and a `#anchor` into a Markdown file to one of
its headings.
"""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mnist_runner import devices
from mnist_runner.config import config_dir, quote_resume_args
from mnist_runner.validate import validate

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

EXAMPLE_PLUGIN = "run in examples/plugin/, whose my_plugin.py registers these names; tests/test_plugins.py checks it"

# command as the test prints it (tokens joined by single spaces) -> why it cannot compose
EXCEPTIONS = {
    "python -m mnist_runner experiment=NAME trainer.threads=1 dataset.root=../shared/data device=cpu "
    "trainer.progress=false": "NAME stands for each preset of conf/experiment/, listed in the table below it",
    "python -m mnist_runner plugins=[my_plugin] model=tiny_cnn dataset=stripes trainer.epochs=3": EXAMPLE_PLUGIN,
    "python -m mnist_runner plugins=[my_plugin] model=tiny_cnn model.channels=32 dataset=stripes --cfg job": (
        EXAMPLE_PLUGIN
    ),
    "python -m mnist_runner -m plugins=[my_plugin] model=tiny_cnn dataset=stripes model.channels=4,8,16": (
        EXAMPLE_PLUGIN
    ),
    "python -m mnist_runner plugins=[my_plugin] model=tiny_cnn model.channels=32 dataset=stripes": EXAMPLE_PLUGIN,
}

SHELL_OPERATORS = {"&&", "||", ";", "|", "&", ">", ">>", "<", "2>", "2>&1"}
FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
RUNNER = re.compile(r"(?:python\S*\s+-m\s+mnist_runner|mnist-runner)(?:\s|$)")


@dataclass(frozen=True)
class Command:
    where: str  # FILE:LINE
    argv: tuple[str, ...]  # the arguments after `python -m mnist_runner`

    @property
    def text(self) -> str:
        return " ".join(("python -m mnist_runner", *self.argv))


def split_fences(text: str) -> tuple[list[tuple[int, list[str]]], str]:
    """The fenced code blocks as (first line number, lines), and the text with them blanked out."""
    blocks, prose, block, start = [], [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            if block is None:
                block, start = [], number + 1
            else:
                blocks.append((start, block))
                block = None
            prose.append("")
        elif block is not None:
            block.append(line)
            prose.append("")
        else:
            prose.append(line)
    return blocks, "\n".join(prose)


def runner_args(line: str) -> list[tuple[str, ...]]:
    """The argument lists of every `python -m mnist_runner` / `mnist-runner` command in one shell line."""
    if not RUNNER.search(line):
        return []
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: check the words as they stand (the check will say what is wrong)
        tokens = line.split()
    found = []
    for i, token in enumerate(tokens):
        if Path(token).name.startswith("python") and tokens[i + 1 : i + 3] == ["-m", "mnist_runner"]:
            start = i + 3
        elif token == "mnist-runner":
            start = i + 1
        else:
            continue
        end = next((j for j in range(start, len(tokens)) if tokens[j] in SHELL_OPERATORS), len(tokens))
        found.append(tuple(tokens[start:end]))
    return found


def commands_in(path: Path) -> list[Command]:
    text = path.read_text()
    blocks, prose = split_fences(text)
    found = []
    for start, lines in blocks:
        logical, first = "", None
        for number, line in enumerate(lines, start):
            first = number if first is None else first
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            logical = (logical + line).strip()
            logical = logical[2:] if logical.startswith("$ ") else logical
            found += [Command(f"{path.name}:{first}", argv) for argv in runner_args(logical)]
            logical, first = "", None
    for match in INLINE_CODE.finditer(prose):
        code = " ".join(match.group(2).split())
        if RUNNER.match(code):
            number = prose.count("\n", 0, match.start()) + 1
            found += [Command(f"{path.name}:{number}", argv) for argv in runner_args(code)]
    return found


def all_commands() -> list[Command]:
    return [command for path in DOCS for command in commands_in(path)]


def jobs(overrides: list[str]) -> list[list[str]]:
    """Override lists of a multirun's jobs that use each swept value at least once.

    Job i takes the i-th value of every sweep (cycling the shorter ones): a 2 x 3 sweep is checked
    with 3 jobs, not 6, since composing costs about 0.1 s and the values do not depend on each other.
    """
    choices = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([override.input_line])
    count = max((len(values) for values in choices), default=1)
    return [[values[i % len(values)] for values in choices] for i in range(count)]


def check(command: Command) -> None:
    """Compose and validate `command` as Hydra would before running it; raise AssertionError if it fails."""
    try:
        args = get_args_parser().parse_args(quote_resume_args(list(command.argv)))  # as train.main does
    except SystemExit:
        raise AssertionError(f"{command.where}: Hydra's command line parser refuses `{command.text}`") from None
    overrides = list(args.overrides)
    if args.config_dir:
        extra = Path(args.config_dir) if Path(args.config_dir).is_absolute() else ROOT / args.config_dir
        assert extra.is_dir(), f"{command.where}: --config-dir {args.config_dir} does not exist (add to EXCEPTIONS?)"
        overrides.append(f"hydra.searchpath=[file://{extra}]")
    for job in jobs(overrides) if args.multirun else [overrides]:
        try:
            with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
                cfg = compose(config_name=args.config_name or "config", overrides=job)
            OmegaConf.to_container(cfg, resolve=True)
            validate(cfg)
        except Exception as error:
            raise AssertionError(
                f"{command.where}: `{command.text}` does not compose with {job}:\n{type(error).__name__}: {error}\n"
                "Fix the command, or list it in EXCEPTIONS in tests/test_docs.py with the reason."
            ) from None


@pytest.fixture
def any_device(monkeypatch):
    """`device=cuda` in a SLURM example composes on a machine without a GPU."""
    monkeypatch.setattr(devices, "resolve_device", lambda kind: kind)


COMMANDS = all_commands()


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {c.text[23:60]}" for c in COMMANDS])
def test_command_composes(command, any_device):
    if command.text in EXCEPTIONS:
        pytest.skip(EXCEPTIONS[command.text])
    check(command)


def test_exceptions_are_still_shown():
    shown = {command.text for command in COMMANDS}
    assert not set(EXCEPTIONS) - shown, "EXCEPTIONS lists commands that no README or docs page shows any more"


def test_the_readme_shows_the_run_and_test_commands():
    readme = [command.text for command in commands_in(ROOT / "README.md")]
    assert "python -m mnist_runner dataset.root=../shared/data" in readme
    ci_test = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line][-1]
    blocks, _ = split_fences((ROOT / "README.md").read_text())
    assert any(ci_test in line for _, lines in blocks for line in lines), f"README does not show CI's `{ci_test}`"


@pytest.mark.parametrize(
    ("markdown", "wrong"),
    [
        ("```bash\npython -m mnist_runner model=resnet\n```", "model/resnet"),
        ("```bash\n$ python -m mnist_runner trainer.epoch=3\n```", "trainer.epoch"),
        ("```bash\npython -m mnist_runner -m optimizer.lr=0.1,-1 \\\n    model=lenet_full\n```", "optimizer.lr=-1"),
        ("Run `python -m mnist_runner\nloss=hinge` for it.", "loss/hinge"),
        ("```bash\npip install . && mnist-runner dataset.normalize=auto,sometimes # a sweep\n```", "dataset.normalize"),
    ],
)
def test_a_wrong_command_fails(tmp_path, any_device, markdown, wrong):
    page = tmp_path / "page.md"
    page.write_text(f"# A page\n\n{markdown}\n")
    [command] = commands_in(page)
    with pytest.raises(AssertionError, match=re.escape(wrong)):
        check(command)


def test_a_config_dir_adds_options(tmp_path, any_device):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text("name: lenet_subset\n")
    check(Command("page.md:1", ("--config-dir", str(tmp_path), "model=mine")))
    with pytest.raises(AssertionError, match="model/mine"):
        check(Command("page.md:1", ("model=mine",)))


def test_continuations_prompts_and_inline_code_are_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n$ python -m mnist_runner -m model=lenet_full,lenet_subset \\\n"
        "    optimizer.lr=0.1   # two jobs\n$ python -m mnist_runner.compare outputs\n```\n\n"
        "Then `python -m mnist_runner --cfg job\nseed=1`, not `python -m mnist_runner.compare`.\n"
    )
    assert [(c.where, c.argv) for c in commands_in(page)] == [
        ("page.md:2", ("-m", "model=lenet_full,lenet_subset", "optimizer.lr=0.1")),
        ("page.md:7", ("--cfg", "job", "seed=1")),
    ]
    assert jobs(["model=lenet_full,lenet_subset", "optimizer.lr=0.1,0.2,0.3", "seed=1"]) == [
        ["model=lenet_full", "optimizer.lr=0.1", "seed=1"],
        ["model=lenet_subset", "optimizer.lr=0.2", "seed=1"],
        ["model=lenet_full", "optimizer.lr=0.3", "seed=1"],
    ]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    _, prose = split_fences(path.read_text())
    seen, found = {}, set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", prose, re.MULTILINE):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    _, prose = split_fences(path.read_text())
    prose = INLINE_CODE.sub("", prose)
    return re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose) + re.findall(
        r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", prose, re.MULTILINE
    )


def broken_links(page: Path) -> list[str]:
    broken = []
    for link in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", link, re.IGNORECASE):  # https:, mailto:, ...
            continue
        target, _, anchor = link.partition("#")
        file = (page.parent / target).resolve() if target else page
        if not file.exists():
            broken.append(f"{link}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: {file.name} has no heading with anchor #{anchor}")
    return broken


@pytest.mark.parametrize("page", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_resolve(page):
    broken = broken_links(page)
    assert not broken, f"{page.name}: broken links:\n" + "\n".join(broken)


def test_broken_links_are_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The `run` folder, again\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#the-run-folder-again), [ok](#page), [web](https://hydra.cc/x.md),\n"
        "[no file](missing.md), [no\nanchor](other.md#nothing)\n\n"
        "`[code](not-a-link.md)`\n\n```\n[code](not-a-link.md)\n```\n\n[ref]: ./gone.txt\n"
    )
    assert [entry.split(":")[0] for entry in broken_links(page)] == ["missing.md", "other.md#nothing", "./gone.txt"]


def test_the_checks_find_something():
    assert len(COMMANDS) >= 20
    assert any(link.startswith("docs/") for link in links(ROOT / "README.md"))
