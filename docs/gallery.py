import pathlib
def build(outdir, cache):
    outdir = pathlib.Path(outdir); outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "index.rst").write_text("Gallery\n=======\n\nstub\n")
