-- wrk script for bench/peer: posts pre-signed 8 KB GitHub pushes, each request with its
-- own X-GitHub-Delivery. GitHub signs only the body, so a pool of signed bodies serves
-- any number of delivery ids; signing in Lua would cost wrk more CPU than the server
-- under test spends. Arguments after `--`: the pool file (one `body<TAB>signature` line
-- per push) and a run name that keeps delivery ids unique across runs.
-- There is no response() on purpose: with one, wrk parses every answer.

local bodies, signatures = {}, {}
local headers = {}
local run = "run"
local threads = {}
tid = 0
-- Requests written, read by done() through thread:get: the daemon may have received up
-- to this many, while wrk counts only the answers it read before the time ran out.
sent = 0

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

function init(args)
  local pool = assert(io.open(args[1], "rb"))
  for line in pool:lines() do
    local body, signature = line:match("^(.-)\t(.+)$")
    bodies[#bodies + 1] = body
    signatures[#signatures + 1] = signature
  end
  pool:close()
  assert(#bodies > 0, "bench/peer.lua: the pool " .. args[1] .. " holds no bodies")
  run = args[2] or run
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  headers["Content-Type"] = "application/json"
  headers["X-GitHub-Event"] = "push"
end

function request()
  sent = sent + 1
  -- Threads start at different places in the pool so that neighbours differ.
  local k = (sent + tid * 17) % #bodies + 1
  headers["X-GitHub-Delivery"] = run .. "-" .. tid .. "-" .. sent
  headers["X-Hub-Signature-256"] = signatures[k]
  return wrk.format("POST", nil, headers, bodies[k])
end

function done(summary, latency, requests)
  local written = 0
  for _, thread in ipairs(threads) do
    written = written + thread:get("sent")
  end
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d status_errors=%d socket_errors=%d sent=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout, written))
end
