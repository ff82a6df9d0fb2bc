"""Loading new data without friction (issue 18): delimiters given as escapes or words, ISO
date-time timestamps, feedback labels that are never read as internal codes, partial feedback
maps, the items file's id column, absolute data paths, command-line spellings in command-line
errors, and duplicate events reported by ``negrec data stats`` and ``negrec train``."""

from __future__ import annotations

import argparse
import json

import pytest

from negrec.cli.data_cmd import add_source_arguments, spec_from_args
from negrec.data import DataFormatError, load_table
from negrec.experiments.data import load_data
from negrec.train.data_spec import DataSpec
from negrec.train.config import TrainConfig
from helpers import run_cli, run_cli_here

DUPLICATES = "duplicate events (same user, item, time and feedback; all kept)"


cli = run_cli_here


def source_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    args = parser.parse_args(list(argv))
    args.command = "data"
    return args


# ---- delimiters ------------------------------------------------------------------------------------

@pytest.mark.parametrize("typed, delimiter", [
    ("\\t", "\t"), ("\\\\t", "\t"), ("tab", "\t"), ("TAB", "\t"), ("\t", "\t"), ("\\x1f", "\x1f"),
    (";", ";"), ("semicolon", ";"), ("pipe", "|"), ("comma", ","), ("::", "::"),
    ("backslash", "\\"),
])
def test_delimiter_escapes_and_words(typed, delimiter):
    from negrec.cli.data_cmd import parse_delimiter

    assert parse_delimiter(typed) == delimiter


@pytest.mark.parametrize("typed", ["", "\\", "\\q\\", '"', "\\n"])
def test_bad_delimiter_is_a_clear_error(typed):
    from negrec.cli import CLIError
    from negrec.cli.data_cmd import parse_delimiter

    with pytest.raises(CLIError, match=r"--delimiter .*(escape|expected a character)"):
        parse_delimiter(typed)


def test_tab_separated_file_from_the_command_line(tmp_path, capsys):
    ev = tmp_path / "e.tsv"
    ev.write_text("user\titem\ttimestamp\tfeedback\n1\t1\t1\tpositive\n1\t2\t2\tdislike\n")
    status, out, err = cli(capsys, "data", "stats", "--source", "csv", "--path", str(ev),
                           "--feedback-col", "feedback", "--delimiter", "\\t")  # a shell's '\t'
    assert status == 0, err
    assert json.loads(out)["events"] == 2


def test_help_documents_the_rules(capsys):
    status, out, _ = cli(capsys, "data", "stats", "--help")
    assert status == 0
    helptext = " ".join(out.split())
    assert "a word (tab, comma, semicolon, pipe, space, colon, backslash) or a backslash escape " \
        "such as '\\t'" in helptext
    assert "ISO-8601 date-times such as 2024-05-01T12:30:00+02:00 (-> seconds since 1970-01-01 " \
        "UTC; without a time zone: UTC)" in helptext
    assert "'*=NAME' maps every other label" in helptext
    assert "--item-id-col ITEM_ID_COL csv/parquet: the --items-path file's item id column" in helptext


# ---- date-time timestamps ------------------------------------------------------------------------


# ---- feedback labels -------------------------------------------------------------------------------


def test_feedback_map_on_the_command_line(tmp_path, capsys):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,action\nu,a,1,like\nu,b,2,meh\nu,c,3,1\n")
    base = ("data", "stats", "--source", "csv", "--path", str(ev), "--feedback-col", "action")
    status, _, err = cli(capsys, *base, "--feedback-map", "like=positive")
    assert status == 2 and err.count("\n") == 1
    assert ("map them with --feedback-map like=positive,meh=NAME,1=NAME (NAME: one of positive, "
            "neutral, skip, dislike), or every label not listed with --feedback-map "
            "'like=positive,*=NAME'") in err
    assert "feedback_values" not in err
    status, out, err = cli(capsys, *base, "--feedback-map", "like=positive, *=neutral")
    assert status == 0, err
    assert json.loads(out)["neutral"] == 2
    args = source_args("--source", "csv", "--path", str(ev), "--feedback-col", "action",
                       "--feedback-map", "like=positive,*=skip")
    assert spec_from_args(args).feedback_map == {"like": "positive", "*": "skip"}


# ---- the items file's id column ---------------------------------------------------------------------

def test_item_id_column_of_the_items_file(tmp_path, capsys):
    ev = tmp_path / "e.csv"
    ev.write_text("uid,iid,ts,feedback\nu,a,1,positive\nu,b,2,dislike\n")
    items = tmp_path / "items.csv"
    items.write_text("movie,genre\na,news\nb,sport\n")
    argv = ("--source", "csv", "--path", str(ev), "--user-col", "uid", "--item-col", "iid",
            "--time-col", "ts", "--feedback-col", "feedback", "--items-path", str(items),
            "--item-id-col", "movie", "--item-category-col", "genre")
    spec = spec_from_args(source_args(*argv))
    assert spec.item_id_col == "movie"
    meta = load_data(spec).item_meta
    assert [meta.cluster_names[c] for c in meta.cluster] == ["news", "sport"]
    status, out, err = cli(capsys, "data", "stats", *argv)
    assert status == 0, err
    assert json.loads(out)["clusters"] == 2


# ---- absolute data paths ----------------------------------------------------------------------------


# ---- command-line spellings in command-line errors ---------------------------------------------------

def test_cli_errors_name_flags_and_the_api_names_keywords(tmp_path, capsys):
    ev = tmp_path / "e.csv"
    ev.write_text("user,item,timestamp,feedback\nu,a,1,positive\nu,b,x,positive\n")
    with pytest.raises(DataFormatError, match=r"\(pass on_bad_rows='skip' to drop such rows"):
        load_table(ev)
    stats = ("data", "stats", "--source", "csv", "--path", str(ev), "--feedback-col", "feedback")
    status, _, err = cli(capsys, *stats)
    assert status == 2 and err.count("\n") == 1
    assert "e.csv:3: unparsable timestamp" in err
    assert "(pass --on-bad-rows skip to drop such rows" in err and "on_bad_rows" not in err
    ev.write_bytes("user,item,timestamp,feedback\nu,caf\xe9,1,positive\n".encode("latin-1"))
    status, _, err = cli(capsys, *stats)
    assert status == 2 and "e.csv:2: cannot decode as utf-8" in err
    assert "--encoding latin-1" in err and "encoding=" not in err
    status, _, err = cli(capsys, *stats, "--encoding", "latin-1")
    assert status == 0, err
    # the full command line prints the same one line
    proc = run_cli(*stats)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--encoding latin-1" in proc.stderr


# ---- duplicates reported, and a checkpoint's data found from another directory ----------------------

def _events_with_a_duplicate(path):
    lines = ["user,item,timestamp,feedback"]
    for u in range(30):
        lines += [f"u{u},i{(u * 3 + k * 7) % 20},{k},{'dislike' if (u + k) % 4 == 0 else 'positive'}"
                  for k in range(8)]
    lines.append(lines[1])  # one exact duplicate event
    path.write_text("\n".join(lines) + "\n")


def test_stats_prints_duplicate_events(tmp_path, capsys):
    ev = tmp_path / "e.csv"
    _events_with_a_duplicate(ev)
    status, out, err = cli(capsys, "data", "stats", "--source", "csv", "--path", str(ev),
                           "--feedback-col", "feedback")
    assert status == 0, err
    assert json.loads(out)["load_report"]["notes"][DUPLICATES] == 1
    assert err.startswith("negrec data: data: table:e.csv: read 241 rows, kept 241; ")
    assert f"noted 1: {DUPLICATES}" in err


def test_train_logs_the_load_summary_and_evaluate_runs_from_elsewhere(tmp_path):
    (tmp_path / "data").mkdir()
    _events_with_a_duplicate(tmp_path / "data" / "e.csv")
    proc = run_cli("train", "--data", "csv", "--path", "data/e.csv", "--feedback-col", "feedback",
                   "--epochs", "1", "--out", "run", "--no-progress", "--set", "model.dim=8",
                   "--set", "model.num_layers=1", "--set", "tensorboard=false",
                   "--set", "objective.weights.dislike=20", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "negrec train: data: table:e.csv: read 241 rows, kept 241; " in proc.stderr
    assert f"noted 1: {DUPLICATES}" in proc.stderr
    ev = run_cli("evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--bootstrap", "10",
                 cwd="/")
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "ndcg@10" in json.loads(ev.stdout)["metrics"]


def test_data_paths_are_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    ev = tmp_path / "d" / "e.csv"
    ev.write_text("user,item,timestamp,feedback\nu,a,1,positive\nu,b,2,positive\n")
    (tmp_path / "d" / "items.csv").write_text("item,category\na,x\n")
    monkeypatch.chdir(tmp_path)
    spec = DataSpec(source="csv", path="d/e.csv", feedback_col="feedback",
                    items_path="./d/../d/items.csv")
    assert spec.path == str(ev) and spec.items_path == str(tmp_path / "d" / "items.csv")
    args = source_args("--source", "csv", "--path", "d/e.csv", "--feedback-col", "feedback")
    assert spec_from_args(args).path == str(ev)
    # the spec a checkpoint stores (TrainConfig -> dict -> TrainConfig) loads from anywhere
    saved = TrainConfig(data=spec).to_dict()
    monkeypatch.chdir("/")
    again = TrainConfig.from_dict(saved).data
    assert again.path == str(ev) and load_data(again).num_events == 2
    assert DataSpec(source="simulated").path is None


# ---- event stores: convert, then every command reads --data store ----------------------------------

TINY_TRAIN = ["--epochs", "1", "--no-progress", "--set", "max_steps=2", "--set", "model.dim=8",
              "--set", "model.num_layers=1", "--set", "model.max_len=10",
              "--set", "tensorboard=false", "--set", "batch_size=16",
              "--set", "objective.weights.dislike=20"]


def test_convert_then_stats_verify_and_train_on_the_store(tmp_path, capsys):
    ev = tmp_path / "e.csv"
    _events_with_a_duplicate(ev)
    csv_args = ("--source", "csv", "--path", str(ev), "--feedback-col", "feedback")
    status, out, err = cli(capsys, "data", "convert", *csv_args, "--out", str(tmp_path / "st"))
    assert status == 0, err
    summary = json.loads(out)
    assert (summary["users"], summary["items"], summary["events"]) == (30, 20, 241)
    assert summary["content_hash"].startswith("sha256:") and summary["bytes"] > 0
    assert (tmp_path / "st" / "manifest.json").exists() and (tmp_path / "st" / "items.npy").exists()
    status, csv_stats, _ = cli(capsys, "data", "stats", *csv_args)
    status, store_stats, err = cli(capsys, "data", "stats", "--data", "store", "--path",
                                   str(tmp_path / "st"))
    assert status == 0, err
    assert json.loads(store_stats) == json.loads(csv_stats)
    assert f"noted 1: {DUPLICATES}" in err  # the report recorded at conversion
    status, out, err = cli(capsys, "data", "verify", str(tmp_path / "st"))
    assert status == 0 and json.loads(out)["verified"] is True, err
    status, _, err = cli(capsys, "train", "--data", "store", "--path", str(tmp_path / "st"),
                         "--out", str(tmp_path / "run"), *TINY_TRAIN)
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["test"]["ndcg@10"] <= 1
    import yaml

    data = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"]
    assert data["source"] == "store" and data["path"] == str(tmp_path / "st")


def test_store_errors_are_one_line_naming_the_file(tmp_path, capsys):
    ev = tmp_path / "e.csv"
    _events_with_a_duplicate(ev)
    convert = ("data", "convert", "--source", "csv", "--path", str(ev), "--feedback-col", "feedback",
               "--out", str(tmp_path / "st"))
    assert cli(capsys, *convert)[0] == 0
    status, _, err = cli(capsys, *convert)
    assert status == 2 and err.count("\n") == 1
    assert f"--out {tmp_path / 'st'}: already exists; pass --overwrite to replace it" in err
    assert cli(capsys, *convert, "--overwrite")[0] == 0
    items = tmp_path / "st" / "items.npy"
    raw = bytearray(items.read_bytes())
    raw[-1] ^= 1
    items.write_bytes(bytes(raw))
    status, _, err = cli(capsys, "data", "verify", str(tmp_path / "st"))
    assert status == 2 and err.count("\n") == 1
    assert f"{items}: content differs from the manifest's SHA-256" in err
    items.write_bytes(bytes(raw[:-8]))
    status, _, err = cli(capsys, "data", "stats", "--data", "store", "--path", str(tmp_path / "st"))
    assert status == 2 and err.count("\n") == 1 and f"{items}: " in err and "truncated" in err
    (tmp_path / "plain").mkdir()
    status, _, err = cli(capsys, "train", "--data", "store", "--path", str(tmp_path / "plain"),
                         "--out", str(tmp_path / "run"), *TINY_TRAIN)
    assert status == 2 and err.count("\n") == 1 and "not an event store (no manifest.json" in err
    status, _, err = cli(capsys, "data", "verify", str(tmp_path / "nothing"))
    assert status == 2 and "nothing: no such event store" in err
