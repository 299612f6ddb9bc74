"""A static leaderboard site built from result files only (see :mod:`.build`)."""

from dferbench.report.site.build import build_site, render_site, serve_site, site

__all__ = ["build_site", "render_site", "serve_site", "site"]
