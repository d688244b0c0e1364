"""``keelhaul image build|push|pull|tags|catalog|rm|inspect``: the registry client by hand.

Human output by default, one JSON document with ``--json``. Credentials come from the
flags, ``KEELHAUL_REGISTRY_USERNAME``/``_PASSWORD`` or docker/podman auth files (see
:mod:`keelhaul.client.credentials`) and are never printed. Failures raise keelhaul errors;
``keelhaul.cli.main`` turns them into one line and the error's exit code.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from keelhaul.units import parse_size

if TYPE_CHECKING:
    from keelhaul.client.media import Platform
    from keelhaul.client.registry import RegistryClient

__all__ = ["image"]

F = TypeVar("F", bound=Callable[..., Any])


class SizeParam(click.ParamType[int, Any]):
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


@dataclass(frozen=True)
class Options:
    username: str | None
    password: str | None
    password_stdin: bool
    authfile: Path | None
    plain_http: bool
    insecure: bool
    as_json: bool
    quiet: bool
    parallel: int
    timeout: float


def _common(func: F) -> F:
    """The options every registry command takes, collected into one :class:`Options`."""
    options = [
        click.option("-u", "--username", help="Registry user (else env or auth files)."),
        click.option(
            "--password",
            help="Password; prefer --password-stdin or KEELHAUL_REGISTRY_PASSWORD.",
        ),
        click.option("--password-stdin", is_flag=True, help="Read the password from stdin."),
        click.option(
            "--authfile",
            type=click.Path(dir_okay=False, path_type=Path),
            help="A docker/podman auth file to use first.",
        ),
        click.option("--plain-http", is_flag=True, help="Speak HTTP, not HTTPS (test registries)."),
        click.option("--insecure", is_flag=True, help="Do not verify the TLS certificate."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
        click.option(
            "--parallel",
            type=click.IntRange(1, 64),
            default=4,
            show_default=True,
            help="Blobs transferred at once.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(1, 3600),
            default=60.0,
            show_default=True,
            help="Seconds without progress before giving up on a request.",
        ),
    ]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        opts = Options(
            username=kwargs.pop("username"),
            password=kwargs.pop("password"),
            password_stdin=kwargs.pop("password_stdin"),
            authfile=kwargs.pop("authfile"),
            plain_http=kwargs.pop("plain_http"),
            insecure=kwargs.pop("insecure"),
            as_json=kwargs.pop("as_json"),
            quiet=kwargs.pop("quiet"),
            parallel=kwargs.pop("parallel"),
            timeout=kwargs.pop("timeout"),
        )
        return func(opts=opts, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


@contextmanager
def _client(registry: str, opts: Options, **settings: Any) -> Iterator[RegistryClient]:
    from keelhaul.client.credentials import resolve_credentials
    from keelhaul.client.httpx_transport import HttpxTransport
    from keelhaul.client.registry import RegistryClient

    password = opts.password
    if opts.password_stdin:
        if opts.password is not None:
            raise click.UsageError("give --password or --password-stdin, not both")
        password = sys.stdin.readline().rstrip("\r\n")
    credentials = resolve_credentials(
        registry,
        username=opts.username,
        password=password,
        environ=os.environ,
        home=Path.home(),
        authfile=opts.authfile,
    )
    transport = HttpxTransport(
        verify=not opts.insecure, timeout=opts.timeout, parallel=opts.parallel
    )
    client = RegistryClient(
        transport,
        registry,
        credentials=credentials,
        plain_http=opts.plain_http,
        parallel=opts.parallel,
        **settings,
    )
    try:
        yield client
    finally:
        client.close()


def _emit(as_json: bool, document: dict[str, Any], lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(document, indent=2, sort_keys=False))
    else:
        for line in lines:
            click.echo(line)


def _platform(text: str | None) -> Platform | None:
    if text is None:
        return None
    from keelhaul.client.media import parse_platform

    try:
        return parse_platform(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--platform") from None


@click.group()
def image() -> None:
    """Build synthetic images; push, pull, list, inspect and delete them on a registry."""


# ---------------------------------------------------------------------------- build


@image.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--layers", type=click.IntRange(1, 1000), default=1, show_default=True)
@click.option("--layer-size", type=SizeParam(), default="1MiB", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same digests.")
@click.option("--compressible", is_flag=True, help="Low-entropy data that gzip halves.")
@click.option(
    "--platforms", default="linux/amd64", show_default=True,
    help="Comma-separated; more than one builds an OCI index.",
)  # fmt: skip
@click.option("--tag", default="latest", show_default=True, help="Tag inside the layout.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def build(
    out: Path,
    layers: int,
    layer_size: int,
    seed: int,
    compressible: bool,
    platforms: str,
    tag: str,
    as_json: bool,
) -> None:
    """Write a deterministic synthetic image as an OCI image layout in OUT."""
    from keelhaul.client.layout import read_layout, write_image
    from keelhaul.client.media import parse_platform

    try:
        wanted = tuple(parse_platform(p) for p in platforms.split(",") if p.strip())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--platforms") from None
    if len(set(wanted)) != len(wanted) or not wanted:
        raise click.BadParameter("list each platform once", param_hint="--platforms")
    digest = write_image(
        out, layers=layers, layer_size=layer_size, seed=seed, tag=tag,
        compressible=compressible, platforms=wanted,
    )  # fmt: skip
    built = read_layout(out, tag)
    blobs = {b.digest: b.size for m in built.images for b in m.blobs()}
    total = sum(blobs.values())
    document = {
        "layout": str(out),
        "tag": tag,
        "digest": digest,
        "media_type": built.root.media_type,
        "platforms": [str(p) for p in wanted],
        "layers": layers,
        "blobs": len(blobs),
        "bytes": total,
    }
    _emit(
        as_json,
        document,
        [
            f"built {out}:{tag}",
            f"  digest     {digest}",
            f"  platforms  {', '.join(str(p) for p in wanted)}",
            f"  blobs      {len(blobs)} ({_human(total)})",
        ],
    )


# ---------------------------------------------------------------------------- push / pull


def _split_layout(text: str) -> tuple[Path, str | None]:
    """``DIR`` or ``DIR:TAG`` (a directory that exists as written wins)."""
    path = Path(text)
    if path.is_dir() or ":" not in text:
        return path, None
    head, _, tag = text.rpartition(":")
    return Path(head), tag or None


@image.command()
@click.argument("layout", metavar="LAYOUT[:TAG]")
@click.argument("ref", metavar="REF")
@click.option("--mount-from", metavar="REPO", help="Mount blobs from this repository.")
@click.option(
    "--chunk-size", type=SizeParam(), default="0",
    help="PATCH in chunks of SIZE (0: one streamed PATCH per blob).",
)  # fmt: skip
@_common
def push(opts: Options, layout: str, ref: str, mount_from: str | None, chunk_size: int) -> None:
    """Push the OCI layout LAYOUT (one tagged image in it) to REF."""
    from keelhaul.client.layout import read_layout
    from keelhaul.client.progress import TransferProgress
    from keelhaul.client.reference import parse_reference

    target = parse_reference(ref)
    if target.digest is not None and target.tag is None:
        raise click.BadParameter("push to a tag, not a digest", param_hint="REF")
    directory, tag = _split_layout(layout)
    source = read_layout(directory, tag)
    with (
        _client(target.registry, opts, chunk_size=chunk_size) as client,
        TransferProgress(f"push {target.repository}", quiet=opts.quiet) as bar,
    ):
        result = client.push_image(
            target.repository, target.tag or "latest", source, mount_from=mount_from, progress=bar
        )
    document = {"reference": str(target), **result.as_dict()}
    _emit(
        opts.as_json,
        document,
        [
            f"pushed {target}",
            f"  digest    {result.digest}",
            f"  blobs     {result.count('uploaded')} uploaded ({_human(result.bytes)}), "
            f"{result.count('exists')} already there, {result.count('mounted')} mounted",
        ],
    )


@image.command()
@click.argument("ref", metavar="REF")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--platform", help="os/arch[/variant] to pick from an index [linux/amd64].")
@click.option("--all-platforms", is_flag=True, help="Keep the whole index.")
@click.option("--tag", help="Tag inside the layout [the reference's tag].")
@_common
def pull(
    opts: Options,
    ref: str,
    out: Path,
    platform: str | None,
    all_platforms: bool,
    tag: str | None,
) -> None:
    """Pull REF into the OCI layout OUT, every blob verified against its digest."""
    from keelhaul.client.layout import LayoutWriter
    from keelhaul.client.progress import TransferProgress
    from keelhaul.client.reference import parse_reference

    source = parse_reference(ref)
    wanted = _platform(platform)
    if wanted is not None and all_platforms:
        raise click.UsageError("give --platform or --all-platforms, not both")
    writer = LayoutWriter(out)
    with (
        _client(source.registry, opts) as client,
        TransferProgress(f"pull {source.repository}", quiet=opts.quiet) as bar,
    ):
        result = client.pull_image(
            source.repository, source.ref,
            layout=writer, tag=tag or source.tag, platform=wanted,
            all_platforms=all_platforms, progress=bar,
        )  # fmt: skip
    document = {"reference": str(source), "layout": str(out), **result.as_dict()}
    lines = [
        f"pulled {source} into {out}",
        f"  digest    {result.digest}",
        f"  blobs     {result.blobs} ({_human(result.bytes)} transferred, "
        f"{result.skipped} already in the layout)",
    ]
    if result.platforms:
        lines.append(f"  platform  {', '.join(result.platforms)}")
    _emit(opts.as_json, document, lines)


# ---------------------------------------------------------------------------- listings


@image.command()
@click.argument("repo", metavar="REPO")
@click.option("--page-size", type=click.IntRange(1, 10000), help="Entries per request.")
@_common
def tags(opts: Options, repo: str, page_size: int | None) -> None:
    """List the tags of REPO (host[:port]/name), following every page."""
    from keelhaul.client.reference import parse_repository

    name = parse_repository(repo)
    with _client(name.registry, opts) as client:
        found = client.tags(name.repository, page_size=page_size)
    _emit(opts.as_json, {"repository": str(name), "tags": found}, found)


@image.command()
@click.argument("registry", metavar="REGISTRY")
@click.option("--page-size", type=click.IntRange(1, 10000), help="Entries per request.")
@_common
def catalog(opts: Options, registry: str, page_size: int | None) -> None:
    """List the repositories of REGISTRY (host[:port]), following every page."""
    from keelhaul.client.reference import parse_registry

    host = parse_registry(registry)
    with _client(host, opts) as client:
        found = client.catalog(page_size=page_size)
    _emit(opts.as_json, {"registry": host, "repositories": found}, found)


@image.command()
@click.argument("ref", metavar="REF")
@_common
def rm(opts: Options, ref: str) -> None:
    """Delete the manifest REF names (by tag: its digest, with every tag on it)."""
    from keelhaul.client.reference import parse_reference

    target = parse_reference(ref)
    with _client(target.registry, opts) as client:
        digest = target.digest or client.head_manifest(target.repository, target.ref).digest
        client.delete_manifest(target.repository, digest)
    _emit(
        opts.as_json,
        {"reference": str(target), "deleted": digest},
        [f"deleted {target} ({digest})"],
    )


@image.command()
@click.argument("ref", metavar="REF")
@click.option("--platform", help="For an index: also show this platform's image.")
@_common
def inspect(opts: Options, ref: str, platform: str | None) -> None:
    """Show REF's manifest: digest, media type, platforms or layers, and config."""
    from keelhaul.client.blobs import BytesSink
    from keelhaul.client.media import select_platform
    from keelhaul.client.reference import parse_reference

    target = parse_reference(ref)
    wanted = _platform(platform)
    with _client(target.registry, opts) as client:
        top = client.get_manifest(target.repository, target.ref)
        document: dict[str, Any] = {
            "reference": str(target),
            "digest": top.digest,
            "media_type": top.media_type,
            "size": len(top.raw),
            "manifest": json.loads(top.raw),
        }
        lines = [
            f"{target}",
            f"  digest      {top.digest}",
            f"  media type  {top.media_type}",
            f"  size        {len(top.raw)} B",
        ]
        shown = top
        if top.is_index:
            document["platforms"] = [
                {"platform": str(d.platform), "digest": d.digest} for d in top.manifests
            ]
            lines += [f"  platform    {d.platform}  {d.digest}" for d in top.manifests]
            if wanted is not None:
                chosen = select_platform(top, wanted)
                shown = client.get_manifest(target.repository, chosen.digest)
                document["image"] = {"digest": shown.digest, "manifest": json.loads(shown.raw)}
                lines.append(f"  {wanted}:   {shown.digest}")
        if not shown.is_index:
            total = sum(layer.size for layer in shown.layers)
            lines.append(f"  layers      {len(shown.layers)} ({_human(total)})")
            lines += [f"    {layer.digest}  {_human(layer.size)}" for layer in shown.layers]
            if shown.config is not None:
                sink = BytesSink()
                client.get_blob(target.repository, shown.config, sink)
                config = json.loads(sink.data or b"{}")
                summary = {
                    k: config.get(k) for k in ("os", "architecture", "variant", "created")
                    if config.get(k)
                }  # fmt: skip
                document["config"] = summary
                lines.append("  config      " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    _emit(opts.as_json, document, lines)
