"""The duty officers' dashboard: a page served by the alert service, its static assets (plain JS
modules, CSS, zh-CN and English strings, the vendored Apache ECharts) and nothing fetched at run time."""
