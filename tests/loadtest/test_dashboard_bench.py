"""recsys bench --compare-dashboard: finding the analysis child a block without the page waits for."""

from __future__ import annotations

import os
import subprocess
import sys

from gateway.loadtest.dashboard_bench import WORKER_MODULE, analysis_children, wait_for_no_analysis


def test_the_analysis_child_is_found_under_its_parent_and_waited_for():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)", WORKER_MODULE])
    try:
        assert analysis_children(os.getpid()) == [child.pid]
        assert analysis_children(child.pid) == []  # only below the given process
        wait_for_no_analysis(os.getpid(), timeout=30)
        assert child.poll() is not None or analysis_children(os.getpid()) == []
    finally:
        child.kill()
        child.wait()
