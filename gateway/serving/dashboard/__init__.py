"""The experiment dashboard (``GET /dashboard``): what the gateway serves now and what the
analysis says, as one page whose charts the browser draws from ``GET /dashboard/data``.

auth.py (viewer token: HTTP Basic or bearer), live.py (traffic per arm from this process's
metrics), worker.py (the child process that runs the analysis), cache.py (the results, computed
off the request path and reused for ``dashboard.refresh_s``), view.py (the page's JSON);
static/ (the page, its script and style; plotly.js comes from the installed ``plotly`` package).
"""
