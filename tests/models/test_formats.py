"""The formats table: every fixture layout is told by exactly one row, once, and travels.

Each fixture is written in code in the layout a hub carries (nothing downloaded); detection reads
headers and folder names only. The table is printed (`pytest -s`) so a reader sees every row.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from format_fixtures import (
    lora_finetune,
    write_bert_like,
    write_loha,
    write_lokr,
    write_sd1_checkpoint,
    write_sd1_peft_lora,
    write_sd2_kohya_lora,
)
from peft import get_peft_model_state_dict
from safetensors.torch import save_file

from dmsec.errors import CheckpointError
from dmsec.models import formats
from dmsec.models.formats import (
    FORMATS,
    Probe,
    UnsupportedAdapterError,
    detect_path,
    matching,
    ref_kind_of_files,
)
from dmsec.models.loading import load_model
from dmsec.models.lora import save_lora
from dmsec.zoo.formats import peft_alphas, write_kohya_lora

MODULE = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"


def _save(tensors: dict[str, torch.Tensor], path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def _locon(path: Path) -> Path:
    """A LyCORIS LoCon: kohya names, a conv module with 4-D down/up weights."""
    conv = "lora_unet_down_blocks_0_resnets_0_conv1"
    return _save({
        f"{conv}.lora_down.weight": torch.randn(4, 16, 3, 3),
        f"{conv}.lora_up.weight": torch.randn(16, 4, 1, 1),
        f"{conv}.alpha": torch.tensor(2.0),
    }, path)  # fmt: skip


def _variant(suffixes: tuple[str, ...]) -> Callable[[Path], Path]:
    """A file with the key suffixes one LyCORIS / adapter variant writes, on one module."""

    def write(path: Path) -> Path:
        return _save({f"{MODULE}{s}": torch.ones(2, 2) for s in suffixes}, path)

    return write


def _pickle(path: Path) -> Path:
    path.write_bytes(b"\x80\x04K\x01.")  # pickle of the int 1: never unpickled by detection
    return path


FILE_LAYOUTS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("diffusers save_lora_weights", write_sd1_peft_lora, "peft-lora"),
    ("kohya LoRA", write_sd2_kohya_lora, "kohya-lora"),
    ("LyCORIS LoCon", _locon, "kohya-lora"),
    ("single-file LDM", write_sd1_checkpoint, "ldm-checkpoint"),
    ("LyCORIS LoHa", write_loha, "loha"),
    ("LyCORIS LoKr", write_lokr, "lokr"),
    (
        "Tucker LoCon",
        _variant((".lora_down.weight", ".lora_up.weight", ".lora_mid.weight")),
        "locon-tucker",
    ),  # fmt: skip
    ("DoRA", _variant((".lora_down.weight", ".lora_up.weight", ".dora_scale")), "dora"),
    ("OFT", _variant((".oft_blocks",)), "oft"),
    ("(IA)^3", _variant((".on_input",)), "ia3"),
    ("GLoRA", _variant((".a1.weight", ".a2.weight", ".b1.weight", ".b2.weight")), "glora"),
    ("LyCORIS full difference", _variant((".diff", ".diff_b")), "lycoris-full"),
    ("non-diffusion safetensors", write_bert_like, "not-diffusion"),
]


def test_the_table_lists_every_format_once_with_a_kind_and_a_title(capsys):
    names = [f.name for f in FORMATS]
    assert len(names) == len(set(names)), names
    for fmt in FORMATS:
        assert fmt.kind in ("model", "full", "adapter", "unsupported", "refused", "none"), fmt
        assert fmt.title, fmt
        print(f"{fmt.name:18} {fmt.kind:12} {fmt.title}")
    kinds = {f.kind for f in FORMATS}
    assert kinds == {"model", "full", "adapter", "unsupported", "refused", "none"}
    assert FORMATS[-1].name == "not-diffusion"  # the fallback row comes last
    assert "kohya-lora" in capsys.readouterr().out


@pytest.mark.parametrize(("layout", "writer", "expected"), FILE_LAYOUTS, ids=[x[0] for x in FILE_LAYOUTS])  # fmt: skip
def test_each_file_layout_is_matched_by_exactly_one_row(layout, writer, expected, tmp_path):
    path = writer(tmp_path / "weights.safetensors")
    detected = detect_path(path)
    probe = Probe(formats.tensor_names(detected.header), None, path.name)
    assert [f.name for f in matching(probe)] == [expected], layout
    assert detected.format.name == expected and detected.path == path


def test_folder_and_dmsec_layouts_are_matched_by_exactly_one_row(tmp_path, tiny_sd, tiny_unet):
    tiny_sd.save(tmp_path / "sd")
    tiny_unet.save(tmp_path / "unet2d")
    ft = lora_finetune(tiny_sd)
    peft_file = save_lora(ft.network, tmp_path / "peft", base_model="../sd")
    unet_file = tiny_unet.save_single_file(tmp_path / "unet.safetensors")
    ckpt = _pickle(tmp_path / "model.ckpt")
    cases = [
        (tmp_path / "sd", "diffusers-folder", tmp_path / "sd"),
        (tmp_path / "unet2d", "diffusers-folder", tmp_path / "unet2d"),
        (tmp_path / "peft", "peft-lora", peft_file),  # a LoRA folder resolves to its file
        (peft_file, "peft-lora", peft_file),
        (unet_file, "diffusers-unet", unet_file),
        (ckpt, "pickle-file", ckpt),
    ]
    for given, expected, told_from in cases:
        detected = detect_path(given)
        assert detected.format.name == expected and detected.path == told_from, given
        if told_from.is_dir():
            probe = Probe(folder_files=tuple(p.name for p in told_from.iterdir()))
        else:
            probe = Probe(formats.tensor_names(detected.header), None, told_from.name)
        assert [f.name for f in matching(probe)] == [expected], given


def test_a_lora_is_detected_once_and_the_result_travels_to_the_loader(tmp_path, tiny_sd, monkeypatch):  # fmt: skip
    tiny_sd.save(tmp_path / "base")
    ft = lora_finetune(tiny_sd)
    kohya = write_kohya_lora(get_peft_model_state_dict(ft.network), None, tmp_path / "k" / "style.safetensors", alpha=peft_alphas(ft.network))  # fmt: skip
    told: list[Path | None] = []
    real = formats.detect_probe

    def counting(probe, path=None, header=None):
        told.append(path)
        return real(probe, path, header)

    monkeypatch.setattr(formats, "detect_probe", counting)
    detected = detect_path(kohya)
    handle = load_model(detected, base=tiny_sd)
    assert told.count(kohya) == 1  # told by detect_path only; load_model read `detected`
    assert handle.info.kind == "lora"


def test_unloadable_rows_refuse_with_the_row_reason(tmp_path, tiny_sd):
    detected = detect_path(write_loha(tmp_path / "loha.safetensors"))
    with pytest.raises(UnsupportedAdapterError, match="LyCORIS LoHa .* not supported"):
        load_model(detected, base=tiny_sd)
    with pytest.raises(CheckpointError, match="unknown checkpoint format '.gguf'"):
        detect_path(_pickle(tmp_path / "model.gguf"))


def test_hub_file_names_file_a_repo_by_the_rows_conventions():
    assert ref_kind_of_files(["sub/pytorch_lora_weights.safetensors", "README.md"]) == "lora"
    assert ref_kind_of_files(["adapter_model.safetensors"]) == "lora"
    assert ref_kind_of_files(["model_index.json", "unet/config.json"]) == "full"
    assert ref_kind_of_files(["sub/model_index.json"]) is None  # a folder marker counts at the root
    assert ref_kind_of_files(["style.safetensors"]) is None  # told by its header at pull time


def test_models_has_no_import_circle():
    """Every import inside dmsec/models (function-level ones too) goes one way: no cycle."""
    import ast

    root = Path(formats.__file__).resolve().parents[1]  # dmsec/models
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dmsec.models"):
                edges.add(str(node.module))
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 2 or node not in graph:
            return
        assert state.get(node) != 1, f"import circle: {' -> '.join([*trail, node])}"
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        visit(name, [])
    assert "dmsec.models.formats.kohya" in graph and "dmsec.models.loading" in graph
