"""Regional popularity forecasts (region x title daily views, 14 days ahead) and the CDN
pre-positioning plan built from them. Entry point: :func:`train.train_forecast`."""
