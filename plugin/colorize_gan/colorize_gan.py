#!/usr/bin/env python3
"""GIMP 3 plug-in "Filters > Colorize (GAN)...": every ``gi`` call of the project lives in this file.

It stays thin: it reads the selected layers' pixels (and the selection mask, and the hint layer mapped into
each layer's coordinates), hands them to ``bridge.colorize`` -- which runs the colorizer in the project's
own Python as a worker process -- and writes the answer back as new layers above the sources (default) or
in place. GIMP is touched only after the worker succeeded, so a failure leaves the image exactly as it was;
the edit (GRAY->RGB conversion and hiding the hint layer included) is one undo group. Errors come back as
EXECUTION_ERROR with the worker's message.

A second procedure, "Filters > Colorize (GAN): add hint layer", adds the empty "Colour hints" layer the
filter picks by default, so the workflow is: add it, paint dots, run the filter, look, add a dot, run again.

Installed by ``colorize-gan-gimp install`` as ``plug-ins/colorize_gan/colorize_gan.py`` next to a copy of
``bridge.py`` and ``colorize_gan.json`` (the recorded worker Python).
"""
import os
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

_HERE = os.path.dirname(os.path.realpath(__file__))
try:
    import bridge  # installed layout: bridge.py beside this file
except ImportError:  # a plain checkout: plugin/colorize_gan/colorize_gan.py next to plugin/bridge.py
    sys.path.insert(0, os.path.dirname(_HERE))
    import bridge  # noqa: E402

PROC_NAME = bridge.PROC_NAME
ADD_HINT_PROC = "python-fu-colorize-gan-add-hint-layer"
HINT_LAYER_NAME = "Colour hints"  # what "add hint layer" creates and the filter picks by default
DEFAULT_RENDER_SIZE = 256  # the runtime's (the plug-in does not import the runtime; tests/test_gimp.py checks they agree)
# Attached to every layer the filter adds (data: the source layer's tattoo), so a re-run can tell its earlier
# results from the photo: it colorizes the photo, not an earlier result, and stacks the new result on top.
RESULT_PARASITE = "colorize-gan-result"
RGBA = "R'G'B'A u8"  # non-linear sRGB bytes: what the model was trained on
MASK = "Y u8"  # the selection is a linear coverage mask


def _choice(*items):
    choice = Gimp.Choice.new()
    for i, (nick, label) in enumerate(items):
        choice.add(nick, i, label, "")
    return choice


def _error(procedure, message):
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


def _have_display():
    """True when a dialog can be shown; GimpUi.init() kills a plug-in that has no display."""
    try:
        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk

        return bool(Gtk.init_check(None)[0])
    except (ValueError, ImportError, TypeError):
        return False


def _show_dialog(procedure, config):
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi

    GimpUi.init(PROC_NAME)
    dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config, title="Colorize (GAN)")
    dialog.fill(["hint-layer", "reference-layer", "render-size", "saturation", "backend", "output-mode", "frames",
                 "temporal-strength", "model"])
    ok = dialog.run()
    dialog.destroy()
    return ok


def _options(config, frames):
    return bridge.Options(
        model=config.get_property("model") or "",
        backend=config.get_property("backend"),
        render_size=int(config.get_property("render-size")),
        saturation=float(config.get_property("saturation")),
        # Frames are the animation: a new layer per frame would add frames, so frames mode works in place.
        output="in-place" if frames else config.get_property("output-mode"),
        temporal=float(config.get_property("temporal-strength")) if frames else 0.0,
    )


def _same(a, b):
    return a is not None and b is not None and a.get_id() == b.get_id()


def _siblings(image, layer):
    """The layers sharing ``layer``'s parent, top to bottom."""
    parent = layer.get_parent()
    return list(parent.get_children() if parent is not None else image.get_layers())


def _result_of(layer):
    """The tattoo (as text) of the layer ``layer`` was colorized from, if the filter made it; else None."""
    parasite = layer.get_parasite(RESULT_PARASITE)
    return None if parasite is None else bytes(parasite.get_data()).decode("ascii", "replace")


def _default_hint_layer(image, config):
    """Interactive runs (and repeats): keep a chosen hint layer of this image, else pick "Colour hints" or none."""
    chosen = config.get_property("hint-layer")
    if chosen is not None and chosen.is_valid() and chosen.get_image().get_id() == image.get_id():
        return
    config.set_property("hint-layer", image.get_layer_by_name(HINT_LAYER_NAME))


def _hint_layer(image, layer):
    """The chosen hint layer, checked: a plain layer of this image with an alpha channel (or None)."""
    if layer is None:
        return None
    if not layer.is_valid() or layer.get_image().get_id() != image.get_id():
        raise bridge.BridgeError("the hint layer is not a layer of this image")
    name = layer.get_name()
    if layer.is_group():
        raise bridge.BridgeError(f"the hint layer '{name}' is a layer group: paint the hints on a plain layer")
    if not layer.has_alpha():
        raise bridge.BridgeError(
            f"the hint layer '{name}' has no alpha channel, so every pixel of it would be a hint: paint the hints on "
            f"a transparent layer (Filters > Colorize (GAN): add hint layer)"
        )
    return layer


def _reference(layer):
    """The chosen reference layer (of any open image) as a bridge.Frame of its RGBA pixels, or None."""
    if layer is None:
        return None
    if isinstance(layer, Gimp.GroupLayer):
        raise bridge.BridgeError(f"the reference layer '{layer.get_name()}' is a layer group: choose a plain layer")
    w, h = layer.get_width(), layer.get_height()
    rgba = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, RGBA, Gegl.AbyssPolicy.CLAMP)
    return bridge.Frame(w, h, bytes(rgba))


def _targets(image, drawables, frames, hint_layer, reference_layer=None):
    def is_hints(layer):  # hint layers (and the reference) are never colorized, as frames or as targets
        return _same(layer, hint_layer) or _same(layer, reference_layer) or layer.get_name() == HINT_LAYER_NAME

    if frames:
        # GIMP plays the bottom layer first; get_layers() lists top to bottom.
        layers = [l for l in reversed(image.get_layers()) if not is_hints(l)]
    else:
        layers = [d for d in drawables if not (isinstance(d, Gimp.Layer) and is_hints(d))]
        if not layers and drawables:
            # Only the hint layer is selected (just painted on): colorize the photo below it, the first layer
            # down that is neither a hint layer nor an earlier result of this filter.
            below = _siblings(image, drawables[0])
            start = next(i for i, l in enumerate(below) if _same(l, drawables[0])) + 1
            layers = [l for l in below[start:] if not is_hints(l) and _result_of(l) is None][:1]
            if not layers:
                raise bridge.BridgeError("only the hint layer is selected and there is no layer below it to colorize")
    if not layers:
        raise bridge.BridgeError("no layer selected")
    for layer in layers:
        if not isinstance(layer, Gimp.Layer):  # channels and layer masks (a GimpChannel kind) are not layers
            raise bridge.BridgeError(f"'{layer.get_name()}' is not a layer: select layers, not channels or masks")
        if layer.is_group():
            raise bridge.BridgeError(f"'{layer.get_name()}' is a layer group: select the layers inside it")
    return layers


def _read(image, layers, options, hint_layer):
    """Pixels (+ selection mask for new layers, + the hint layer over the same pixels) of every layer the
    selection touches."""
    selection = None if Gimp.Selection.is_empty(image) else image.get_selection()
    hx, hy = hint_layer.get_offsets()[1:] if hint_layer is not None else (0, 0)
    jobs = []
    for layer in layers:
        touched, _x, _y, _w, _h = layer.mask_intersect()
        if not touched:
            continue
        w, h = layer.get_width(), layer.get_height()
        _ok, ox, oy = layer.get_offsets()
        rgba = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, RGBA, Gegl.AbyssPolicy.CLAMP)
        mask = None
        if selection is not None and options.output == "new-layer":
            # Image coordinates; outside the canvas the abyss is 0 = not selected.
            mask = selection.get_buffer().get(Gegl.Rectangle.new(ox, oy, w, h), 1.0, MASK, Gegl.AbyssPolicy.NONE)
        hints = None
        if hint_layer is not None:
            # The hint layer's pixels over this layer's rectangle (both may have offsets and any size); outside
            # the hint layer the abyss is transparent = no hint. The whole layer, selected or not, like the L the
            # colour is predicted from: hints outside the selection still steer the colour inside it.
            hints = hint_layer.get_buffer().get(Gegl.Rectangle.new(ox - hx, oy - hy, w, h), 1.0, RGBA,
                                                Gegl.AbyssPolicy.NONE)
        frame = bridge.Frame(w, h, bytes(rgba), None if mask is None else bytes(mask),
                             None if hints is None else bytes(hints))
        jobs.append((layer, (ox, oy, w, h), frame))
    if not jobs:
        raise bridge.BridgeError("the selection does not overlap the selected layer(s)")
    return jobs


def _apply(image, jobs, outputs, options, hint_layer):
    """Write the worker's pixels; one undo group, GRAY->RGB conversion and hiding the hint layer inside it."""
    Gimp.context_push()
    image.undo_group_start()
    try:
        if image.get_base_type() != Gimp.ImageBaseType.RGB:
            image.convert_rgb()  # else an RGBA layer added to a GRAY image silently turns GRAYA
        for (layer, (ox, oy, w, h), _frame), pixels in zip(jobs, outputs):
            rect = Gegl.Rectangle.new(0, 0, w, h)
            if options.output == "new-layer":
                target = Gimp.Layer.new(
                    image, f"{layer.get_name()} (colorized)", w, h, Gimp.ImageType.RGBA_IMAGE, 100.0,
                    Gimp.LayerMode.NORMAL,
                )
                # Right above the source -- and above this filter's earlier results of it sitting there, so a
                # re-run (with a new hint, say) is the layer you see.
                siblings, source = _siblings(image, layer), str(layer.get_tattoo())
                position = image.get_item_position(layer)
                while position > 0 and _result_of(siblings[position - 1]) == source:
                    position -= 1
                image.insert_layer(target, layer.get_parent(), position)
                target.attach_parasite(Gimp.Parasite.new(
                    RESULT_PARASITE, Gimp.PARASITE_PERSISTENT | Gimp.PARASITE_UNDOABLE, source.encode("ascii")))
                target.set_offsets(ox, oy)
                buf = target.get_buffer()
            else:
                # The shadow buffer + merge_shadow is GIMP's filter path: undoable and blended through the
                # selection (feathered edges included) by GIMP itself.
                target = layer
                buf = layer.get_shadow_buffer()
            buf.set(rect, RGBA, pixels)
            buf.flush()  # without it GIMP reads back zeros
            if options.output != "new-layer":
                layer.merge_shadow(True)
            target.update(0, 0, w, h)
        if hint_layer is not None:
            hint_layer.set_visible(False)  # so you see the result; kept for the next dot and the next run
    finally:
        image.undo_group_end()
        Gimp.context_pop()
    Gimp.displays_flush()


def run(procedure, run_mode, image, drawables, config, _data):
    Gegl.init(None)  # here, not in do_create_procedure: GIMP also creates procedures when it queries plug-ins at start-up
    if run_mode != Gimp.RunMode.NONINTERACTIVE:  # scripts get exactly the hint layer they pass (None = no hints)
        _default_hint_layer(image, config)
    if run_mode == Gimp.RunMode.INTERACTIVE and _have_display() and not _show_dialog(procedure, config):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    frames = bool(config.get_property("frames"))
    try:
        options = _options(config, frames)
        hint_layer = _hint_layer(image, config.get_property("hint-layer"))
        reference_layer = config.get_property("reference-layer")
        python = bridge.worker_python(bridge.load_config(_HERE))
        jobs = _read(image, _targets(image, drawables, frames, hint_layer, reference_layer), options, hint_layer)
        Gimp.progress_init("Colorizing (GAN)...")
        result = bridge.colorize(
            [frame for _l, _r, frame in jobs], options, python,
            progress=lambda fraction, _msg: Gimp.progress_update(fraction),
            reference=_reference(reference_layer),
        )
        for warning in result.info.get("warnings", []):
            Gimp.message(f"Colorize (GAN): {warning}")
        _apply(image, jobs, result.frames, options, hint_layer)
        Gimp.progress_update(1.0)
    except bridge.BridgeError as exc:
        return _error(procedure, f"Colorize (GAN): {exc}")
    except Exception as exc:  # noqa: BLE001 -- GIMP must get an error status, never a crash or a false success
        return _error(procedure, f"Colorize (GAN) failed: {type(exc).__name__}: {exc}")
    finally:
        Gimp.progress_end()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def run_add_hint_layer(procedure, _run_mode, image, drawables, _config, _data):
    """Add an empty, transparent "Colour hints" layer (image size) above the active layer and make it active;
    if the image has one already, show it and make it active instead (one hint layer is what the filter picks)."""
    try:
        Gimp.context_push()
        image.undo_group_start()
        try:
            if image.get_base_type() != Gimp.ImageBaseType.RGB:
                image.convert_rgb()  # colour dots cannot be painted on a greyscale image
            layer = image.get_layer_by_name(HINT_LAYER_NAME)
            if layer is None:
                layer = Gimp.Layer.new(image, HINT_LAYER_NAME, image.get_width(), image.get_height(),
                                       Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
                anchor = next((d for d in drawables if isinstance(d, Gimp.Layer)), None)
                if anchor is None:
                    image.insert_layer(layer, None, 0)
                else:
                    image.insert_layer(layer, anchor.get_parent(), image.get_item_position(anchor))
                layer.fill(Gimp.FillType.TRANSPARENT)
            layer.set_visible(True)
            image.set_selected_layers([layer])
        finally:
            image.undo_group_end()
            Gimp.context_pop()
        Gimp.displays_flush()
    except Exception as exc:  # noqa: BLE001 -- GIMP must get an error status, never a crash
        return _error(procedure, f"Colorize (GAN): add hint layer failed: {type(exc).__name__}: {exc}")
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class ColorizeGan(Gimp.PlugIn):
    def do_set_i18n(self, _name):
        return False  # no translations shipped; skips GIMP's catalogue lookup

    def do_query_procedures(self):
        return [PROC_NAME, ADD_HINT_PROC]

    def do_create_procedure(self, name):
        if name == ADD_HINT_PROC:
            return self._add_hint_procedure(name)
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE | Gimp.ProcedureSensitivityMask.DRAWABLES)
        proc.set_menu_label("Colorize (GAN)...")
        proc.add_menu_path("<Image>/Filters")
        proc.set_documentation(
            "Colorize greyscale layers with a conditional GAN",
            "Predicts colour for the selected layers (or every layer as animation frames) with colorize-gan, "
            "keeping their luminance. Honours the selection; follows the colour dots of a hint layer. Runs in the "
            "project's Python as a worker process.",
            name,
        )
        proc.set_attribution("colorize-gan", "colorize-gan", "2026")
        rw = GObject.ParamFlags.READWRITE
        # Mnemonics avoid the dialog buttons' own (Reset r, Load l, Save s, OK o, Cancel c, Help h).
        # The dialog shows the runtime's default render size (runtime.image.colorizer.DEFAULT_RENDER_SIZE, checked by
        # tests/test_gimp.py) rather than 0, which read as a bug; 0 still means "the default" for scripts.
        proc.add_int_argument("render-size", "Render si_ze",
                              f"Long side the network sees, in pixels (default {DEFAULT_RENDER_SIZE}; larger = finer "
                              "colour regions, ~4x slower per doubling; 0 = the default)",
                              0, 4096, DEFAULT_RENDER_SIZE, rw)
        proc.add_double_argument("saturation", "Saturatio_n", "Chroma scale (1 = as predicted, 0 = grey)",
                                 0.0, 3.0, 1.0, rw)
        proc.add_choice_argument("backend", "_Backend", "Inference backend (auto = GPU if available, else CPU)",
                                 _choice(("auto", "Auto"), ("gpu", "GPU"), ("cpu", "CPU")), "auto", rw)
        proc.add_choice_argument("output-mode", "O_utput", "Where the colour goes (frames mode always in place)",
                                 _choice(("new-layer", "New layer above"), ("in-place", "In place")), "new-layer", rw)
        proc.add_boolean_argument("frames", "All layers as _frames",
                                  "Colorize every layer as an animation frame, with temporal stabilization", False, rw)
        proc.add_double_argument("temporal-strength", "Frame s_tabilization",
                                 "How strongly colour is carried between frames (0 = off)", 0.0, 1.0, 0.6, rw)
        proc.add_string_argument("model", "_Model", "Model bundle (.json/.onnx/checkpoint dir; blank = built-in default)",
                                 "", rw)
        # Last, so scripts that pass the arguments above by position keep working.
        proc.add_layer_argument("hint-layer", "H_int layer",
                                f"Layer whose opaque pixels are colour hints (interactive default: '{HINT_LAYER_NAME}' "
                                "if the image has one; none = automatic colour)", True, rw)
        # Last again: a colour picture of the same scene (a layer of this or another open image) whose colours the
        # picture takes where its parts match; every frame in frames mode. Never colorized itself.
        proc.add_layer_argument("reference-layer", "R_eference",
                                "A colour layer (of any open image) of the same scene, person or object: matching "
                                "parts take its colour (none = automatic colour)", True, rw)
        return proc

    def _add_hint_procedure(self, name):
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_add_hint_layer, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE | Gimp.ProcedureSensitivityMask.DRAWABLES
                                  | Gimp.ProcedureSensitivityMask.NO_DRAWABLES)
        proc.set_menu_label("Colorize (GAN): add hint layer")
        proc.add_menu_path("<Image>/Filters")
        proc.set_documentation(
            f"Add a '{HINT_LAYER_NAME}' layer for Colorize (GAN)",
            f"Adds an empty transparent '{HINT_LAYER_NAME}' layer above the active layer and makes it active: paint "
            "colour dots on it, then run Filters > Colorize (GAN)... If the image has one already, it is shown and "
            "made active instead. Greyscale images are converted to RGB (colour cannot be painted on them).",
            name,
        )
        proc.set_attribution("colorize-gan", "colorize-gan", "2026")
        return proc


Gimp.main(ColorizeGan.__gtype__, sys.argv)
