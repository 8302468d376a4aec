"""The statistics domain of the alert service: weekly (county, industry) cell statistics, the grid,
series and pass-rate tables the dashboard and analysts read."""
