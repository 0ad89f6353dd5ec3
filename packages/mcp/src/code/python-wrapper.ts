/**
 * Runs a Python file as a notebook cell would: the last expression's value is the main result, objects with
 * IPython's _repr_png_ (and svg, html, markdown, jpeg) give rich results, display() shows more, and
 * matplotlib figures left open become PNGs. Results go to a JSON file, bounded by the byte budget (argv[3])
 * and the text limit (argv[4]); the code file is removed once read.
 */
export const PYTHON_WRAPPER = String.raw`
import ast, base64, io, json, os, sys, traceback
code_path, results_path, budget, text_limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.environ.setdefault("MPLBACKEND", "Agg")
with open(code_path, encoding="utf-8") as f:
    source = f.read()
os.unlink(code_path)
results = []
used = [0]

def bounded(text):
    if len(text) <= text_limit:
        return text
    return text[: text_limit // 2] + "\n[... %d characters left out ...]\n" % (len(text) - text_limit) + text[-(text_limit // 2):]

def add(entry):
    size = sum(len(v) for v in entry.values() if isinstance(v, str))
    if used[0] + size > budget:
        results.append({"isMainResult": entry["isMainResult"], "text": "[result left out: the run's results exceeded %d bytes]" % budget})
        return
    used[0] += size
    results.append(entry)

def emit(obj, main=False):
    entry = {"isMainResult": main}
    if isinstance(obj, (bytes, bytearray)) and bytes(obj[:8]) == b"\x89PNG\r\n\x1a\n":
        entry["png"] = base64.b64encode(bytes(obj)).decode()
    elif not isinstance(obj, type):
        for attr, key in (("_repr_png_", "png"), ("_repr_jpeg_", "jpeg"), ("_repr_svg_", "svg"), ("_repr_html_", "html"), ("_repr_markdown_", "markdown")):
            fn = getattr(obj, attr, None)
            if not callable(fn):
                continue
            try:
                data = fn()
            except Exception:
                continue
            if isinstance(data, tuple):
                data = data[0]
            if data is None:
                continue
            if key in ("png", "jpeg"):
                entry[key] = base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()
            else:
                entry[key] = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    try:
        entry["text"] = bounded(repr(obj))
    except Exception as e:
        entry["text"] = "<repr failed: %s>" % e
    add(entry)

def display(*objs):
    for obj in objs:
        emit(obj)

namespace = {"__name__": "__main__", "__builtins__": __builtins__, "display": display}
error = None
try:
    tree = ast.parse(source, "<code>")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<code>", "exec"), namespace)
    if last is not None:
        value = eval(compile(last, "<code>", "eval"), namespace)
        if value is not None:
            emit(value, True)
except SystemExit as e:
    if e.code not in (None, 0):
        error = {"name": "SystemExit", "value": str(e.code), "traceback": ""}
except BaseException as e:
    error = {"name": type(e).__name__, "value": str(e), "traceback": bounded(traceback.format_exc())}
pyplot = sys.modules.get("matplotlib.pyplot")
if pyplot is not None:
    try:
        for number in pyplot.get_fignums():
            buffer = io.BytesIO()
            pyplot.figure(number).savefig(buffer, format="png")
            add({"isMainResult": False, "png": base64.b64encode(buffer.getvalue()).decode()})
        pyplot.close("all")
    except Exception as e:
        results.append({"isMainResult": False, "text": "[figures could not be saved: %s]" % e})
sys.stdout.flush()
sys.stderr.flush()
with open(results_path, "w", encoding="utf-8") as f:
    json.dump({"results": results, "error": error}, f)
`;
