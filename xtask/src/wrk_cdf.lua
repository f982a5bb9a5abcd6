-- Loaded by `cargo xtask bench proxy` with wrk -s: after the run, prints the response time
-- distribution (in microseconds) at the percentiles the latency CDF is drawn from, one
-- "cdf PERCENT MICROSECONDS" line each (0 is the fastest response, 100 the slowest).
done = function(summary, latency, requests)
  io.write(string.format("cdf 0 %d\n", latency.min))
  for _, p in ipairs({1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.99}) do
    io.write(string.format("cdf %g %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("cdf 100 %d\n", latency.max))
end
