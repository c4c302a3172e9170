"""Runs inside gimp-console (python-fu-eval) for tests/test_gimp.py: many cases per GIMP launch.

Reads the case list from $COLORIZE_GAN_GIMP_CASES (JSON), and for each case: loads the image, adds
layers / offsets / a selection as asked, runs python-fu-colorize-gan (or the case's "proc") through the
PDB ("runs" times; layers named by index, top to bottom, or by name), then dumps what the test checks --
status, error text, every layer's geometry, visibility, parasites and raw R'G'B'A u8 pixels, the selected
layers, the selection mask, the image base type -- into $OUT/<case>/ plus a merged PNG to look at. A case
that raises is recorded as such and the next case still runs, so one launch answers every test.
"""
import json
import os
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

PROC = "python-fu-colorize-gan"
PROCS = {"colorize": PROC, "add-hint-layer": "python-fu-colorize-gan-add-hint-layer"}


def _load(path):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))


def _dump_layer(layer, path):
    w, h = layer.get_width(), layer.get_height()
    data = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.NONE)
    with open(path, "wb") as fh:
        fh.write(bytes(data))
    _ok, ox, oy = layer.get_offsets()
    return {"name": layer.get_name(), "offsets": [ox, oy], "size": [w, h], "has_alpha": layer.has_alpha(),
            "visible": layer.get_visible(), "parasites": sorted(layer.get_parasite_list()),
            "tattoo": layer.get_tattoo(), "pixels": os.path.basename(path)}


def _snapshot(image, folder, tag):
    os.makedirs(folder, exist_ok=True)
    layers = [_dump_layer(l, os.path.join(folder, f"{tag}-layer{i}.rgba")) for i, l in enumerate(image.get_layers())]
    w, h = image.get_width(), image.get_height()
    mask = image.get_selection().get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "Y u8", Gegl.AbyssPolicy.NONE)
    with open(os.path.join(folder, f"{tag}-selection.y"), "wb") as fh:
        fh.write(bytes(mask))
    return {
        "base_type": image.get_base_type().value_nick,
        "size": [w, h],
        "layers": layers,  # top to bottom
        "selected": [l.get_name() for l in image.get_selected_layers()],
        "selection_empty": bool(Gimp.Selection.is_empty(image)),
    }


def _registration(name=PROC):
    proc = Gimp.get_pdb().lookup_procedure(name)
    if proc is None:
        return {"registered": False}
    return {
        "registered": True,
        "menu_label": proc.get_menu_label(),
        "menu_paths": list(proc.get_menu_paths()),
        "image_types": proc.get_image_types(),
        "arguments": [spec.get_name() for spec in proc.get_arguments()],
        # what the dialog shows before the user changes anything (int / double / string arguments)
        "defaults": {spec.get_name(): spec.get_default_value() for spec in proc.get_arguments()
                     if isinstance(spec.get_default_value(), (int, float, str))},
    }


def _prepare(case):
    image = _load(case["input"])
    for extra in case.get("layers", []):
        layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(extra["file"]))
        image.insert_layer(layer, None, 0)
        if "name" in extra:
            layer.set_name(extra["name"])
        if "offsets" in extra:
            layer.set_offsets(*extra["offsets"])
        if extra.get("visible") is False:
            layer.set_visible(False)
    if case.get("group"):
        image.insert_layer(Gimp.GroupLayer.new(image, "Group"), None, 0)
    for index, (x, y) in case.get("offsets", {}).items():
        image.get_layers()[int(index)].set_offsets(x, y)
    sel = case.get("select")
    if sel:
        op = Gimp.ChannelOps.REPLACE
        if sel["shape"] == "rect":
            image.select_rectangle(op, *sel["box"])
        else:
            image.select_ellipse(op, *sel["box"])
        if sel.get("feather"):
            Gimp.Selection.feather(image, float(sel["feather"]))
    return image


def _layer(image, ref):
    """A layer by index (top to bottom) or by name."""
    layer = image.get_layers()[ref] if isinstance(ref, int) else image.get_layer_by_name(ref)
    if layer is None:
        raise RuntimeError(f"no layer {ref!r}")
    return layer


def _run_proc(case, image):
    name = PROCS[case.get("proc", "colorize")]
    proc = Gimp.get_pdb().lookup_procedure(name)
    if proc is None:
        raise RuntimeError(f"{name} is not registered")
    cfg = proc.create_config()
    cfg.set_property("run-mode", getattr(Gimp.RunMode, case.get("run_mode", "NONINTERACTIVE")))
    cfg.set_property("image", image)
    drawables = image.get_layers() if case.get("drawables") == "all" else [
        _layer(image, ref) for ref in case.get("drawables", [0])]
    cfg.set_core_object_array("drawables", drawables)
    for key, value in case.get("args", {}).items():
        cfg.set_property(key, value)
    if "hint_layer" in case:
        cfg.set_property("hint-layer", _layer(image, case["hint_layer"]))
    if "reference_layer" in case:
        cfg.set_property("reference-layer", _layer(image, case["reference_layer"]))
    res = proc.run(cfg)
    return res.index(0), res.index(1) if res.length() > 1 else None


def _run_case(case, out_dir):
    folder = os.path.join(out_dir, case["name"])
    image = _prepare(case)
    before = _snapshot(image, folder, "before")
    started = time.monotonic()
    for _ in range(case.get("runs", 1)):  # re-runs: each with the drawables named again (the stack changed)
        status, error = _run_proc(case, image)
        if status != Gimp.PDBStatusType.SUCCESS:
            break
    seconds = time.monotonic() - started
    after = _snapshot(image, folder, "after")
    merged = os.path.join(folder, "merged.png")
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(merged), None)
    image.delete()
    return {"status": status.value_nick, "error": None if error is None else str(error), "before": before,
            "after": after, "seconds": round(seconds, 2)}


def main():
    with open(os.environ["COLORIZE_GAN_GIMP_CASES"], encoding="utf-8") as fh:
        spec = json.load(fh)
    out_dir = spec["out"]
    results = {"registration": _registration(), "registration_add_hint": _registration(PROCS["add-hint-layer"]),
               "cases": {}}
    for case in spec["cases"]:
        try:
            results["cases"][case["name"]] = _run_case(case, out_dir)
        except Exception:  # recorded for the test that owns the case; the other cases still run
            results["cases"][case["name"]] = {"status": "driver-error", "error": traceback.format_exc()}
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)


main()
