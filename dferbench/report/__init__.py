"""Reporting: metrics, statistics, leaderboards and the site, built from result files only."""
