"""The ``catalog`` CLI without an api: parsing, request bodies, errors, text output."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

from hub.catalogue import commands
from hub.catalogue.render import resource_detail, resource_table, width
from hub.catalogue.samples import load_sample, schemas_dir


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="govhub")
    commands.register(root.add_subparsers(dest="command", required=True))
    return root


def test_actions_parse() -> None:
    args = parser().parse_args(["catalog", "search", "低保", "--classification", "重要", "--json"])
    assert args.query == "低保" and args.classification == "重要" and args.json
    args = parser().parse_args(["catalog", "deprecate", "dibao", "--reason", "合并"])
    assert args.code == "dibao" and args.reason == "合并"
    with pytest.raises(SystemExit):
        parser().parse_args(["catalog", "deprecate", "dibao"])  # --reason is required


def test_registration_body_from_sample_or_files(tmp_path: Path) -> None:
    args = parser().parse_args(["catalog", "register", "--sample", "mzj.dibao"])
    body = commands.registration_body(args)
    assert body["resource"]["code"] == "dibao" and "DibaoRecipient" in body["schema"]
    schema, meta = schemas_dir() / "rsj.shebao.avsc", schemas_dir() / "rsj.shebao.catalogue.json"
    args = parser().parse_args(["catalog", "register", str(schema), str(meta)])
    body = commands.registration_body(args)
    assert body["resource"] == orjson.loads(meta.read_bytes())


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    args = parser().parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["catalog", "register"], capsys)
    assert (
        code == 2
        and err == "govhub: error: register needs SCHEMA.avsc and METADATA.json, or --sample NAME\n"
    )
    code, _, err = run(["catalog", "register", "--sample", "nope.nope"], capsys)
    assert code == 2 and err.startswith("govhub: error: ") and err.count("\n") == 1
    bad = tmp_path / "meta.json"
    bad.write_text("{", encoding="utf-8")
    code, _, err = run(["catalog", "register", str(tmp_path / "x.avsc"), str(bad)], capsys)
    assert code == 2 and "cannot read" in err
    closed = ["--api-url", "http://127.0.0.1:9", "--token", "t"]
    code, _, err = run(["catalog", "list", *closed], capsys)
    assert code == 2 and err.startswith("govhub: error: cannot reach the api")


def test_text_output_aligns_chinese() -> None:
    assert width("低保ab") == 6
    sample = load_sample("mzj.dibao").resource
    item = {
        **sample.model_dump(mode="json"),
        "personal_tags": ["address", "id_card", "name"],
        "score": 12.5,
    }
    lines = resource_table([item], scored=True).splitlines()
    assert lines[2].startswith("dibao") and "有条件共享" in lines[2] and "身份证号" in lines[2]
    assert width(lines[0]) >= width(lines[2].rstrip()) - 20
    detail = resource_detail({**sample.model_dump(mode="json"), "required_approvals": ["owner"]})
    assert "低保救助对象" in detail and "∈" not in detail and "[1, 20]" in detail
