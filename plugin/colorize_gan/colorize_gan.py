#!/usr/bin/env python3
"""GIMP 3 plug-in "Filters > Colorize (GAN)...": every ``gi`` call of the project lives in this file.

It stays thin: it reads the selected layers' pixels (and the selection mask), hands them to
``bridge.colorize`` -- which runs the colorizer in the project's own Python as a worker process -- and
writes the answer back as new layers above the sources (default) or in place. GIMP is touched only after
the worker succeeded, so a failure leaves the image exactly as it was; the edit (GRAY->RGB conversion
included) is one undo group. Errors come back as EXECUTION_ERROR with the worker's message.

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
    dialog.fill(None)
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


def _targets(image, drawables, frames):
    if frames:
        # GIMP plays the bottom layer first; get_layers() lists top to bottom.
        layers = list(reversed(image.get_layers()))
    else:
        layers = list(drawables)
    if not layers:
        raise bridge.BridgeError("no layer selected")
    for layer in layers:
        if not isinstance(layer, Gimp.Layer):  # channels and layer masks (a GimpChannel kind) are not layers
            raise bridge.BridgeError(f"'{layer.get_name()}' is not a layer: select layers, not channels or masks")
        if layer.is_group():
            raise bridge.BridgeError(f"'{layer.get_name()}' is a layer group: select the layers inside it")
    return layers


def _read(image, layers, options):
    """Pixels (+ selection mask for new layers) of every layer the selection touches."""
    selection = None if Gimp.Selection.is_empty(image) else image.get_selection()
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
        jobs.append((layer, (ox, oy, w, h), bridge.Frame(w, h, bytes(rgba), None if mask is None else bytes(mask))))
    if not jobs:
        raise bridge.BridgeError("the selection does not overlap the selected layer(s)")
    return jobs


def _apply(image, jobs, outputs, options):
    """Write the worker's pixels; one undo group, GRAY->RGB conversion inside it."""
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
                image.insert_layer(target, layer.get_parent(), image.get_item_position(layer))
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
    finally:
        image.undo_group_end()
        Gimp.context_pop()
    Gimp.displays_flush()


def run(procedure, run_mode, image, drawables, config, _data):
    Gegl.init(None)  # here, not in do_create_procedure: GIMP also creates procedures when it queries plug-ins at start-up
    if run_mode == Gimp.RunMode.INTERACTIVE and _have_display() and not _show_dialog(procedure, config):
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    frames = bool(config.get_property("frames"))
    try:
        options = _options(config, frames)
        python = bridge.worker_python(bridge.load_config(_HERE))
        jobs = _read(image, _targets(image, drawables, frames), options)
        Gimp.progress_init("Colorizing (GAN)...")
        result = bridge.colorize(
            [frame for _l, _r, frame in jobs], options, python,
            progress=lambda fraction, _msg: Gimp.progress_update(fraction),
        )
        for warning in result.info.get("warnings", []):
            Gimp.message(f"Colorize (GAN): {warning}")
        _apply(image, jobs, result.frames, options)
        Gimp.progress_update(1.0)
    except bridge.BridgeError as exc:
        return _error(procedure, f"Colorize (GAN): {exc}")
    except Exception as exc:  # noqa: BLE001 -- GIMP must get an error status, never a crash or a false success
        return _error(procedure, f"Colorize (GAN) failed: {type(exc).__name__}: {exc}")
    finally:
        Gimp.progress_end()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


class ColorizeGan(Gimp.PlugIn):
    def do_set_i18n(self, _name):
        return False  # no translations shipped; skips GIMP's catalogue lookup

    def do_query_procedures(self):
        return [PROC_NAME]

    def do_create_procedure(self, name):
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE | Gimp.ProcedureSensitivityMask.DRAWABLES)
        proc.set_menu_label("Colorize (GAN)...")
        proc.add_menu_path("<Image>/Filters")
        proc.set_documentation(
            "Colorize greyscale layers with a conditional GAN",
            "Predicts colour for the selected layers (or every layer as animation frames) with colorize-gan, "
            "keeping their luminance. Honours the selection. Runs in the project's Python as a worker process.",
            name,
        )
        proc.set_attribution("colorize-gan", "colorize-gan", "2026")
        rw = GObject.ParamFlags.READWRITE
        # Mnemonics avoid the dialog buttons' own (Reset r, Save s, OK o, Cancel c, Help h).
        proc.add_int_argument("render-size", "Render si_ze", "Model resolution in pixels (0 = the model's default)",
                              0, 4096, 0, rw)
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
        return proc


Gimp.main(ColorizeGan.__gtype__, sys.argv)
