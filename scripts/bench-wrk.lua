-- scripts/bench-wrk.lua: the one wrk script of scripts/bench. Configured by environment
-- variables (wrk hands arguments only to init(), but delay() and response() must be defined
-- when the script loads, so the mode has to be known then):
--
--   BENCH_MODE       get        GET the URL's path (reference A: /healthz)
--                    form       POST /oauth2/introspect, token=… (x-www-form-urlencoded)
--                    proto      POST /tokend.v1.IntrospectionService/Introspect,
--                               Content-Type: application/proto, body = IntrospectRequest{token}
--                    authz      GET /authz (forward auth), Authorization: Bearer <token>, the
--                               gateway's credentials in X-Tokend-Authorization (BENCH_AUTH)
--                    jwt        as form, with Accept: application/token-introspection+jwt (RFC 9701)
--                    cc         POST /oauth2/token, grant_type=client_credentials (no token file)
--                    issue      POST /tokend.v1.AdminService/IssueToken, Connect JSON
--                               {"client_id": BENCH_CLIENT} (no token file; BENCH_AUTH: "Bearer …")
--   BENCH_TOKENS     file with one raw token per line
--   BENCH_COUNT      use the first N tokens of the file (default: all)
--   BENCH_ORDER      random (default): a uniformly random token of the N per request
--                    seq: one pass over the N tokens, split between threads; each thread stops
--                         when its share is done and writes BENCH_DONE_DIR/done.ID (used to warm
--                         caches and to fill memory)
--   BENCH_AUTH       value of the Authorization header ("Basic …"); in authz mode, of
--                    X-Tokend-Authorization
--   BENCH_THREADS    wrk's -t (so that seq mode can split the list)
--   BENCH_GAP_MS     paced mode: mean gap in ms between a response and the next request on each
--                    connection (exponential, randomised rounding to wrk's whole milliseconds).
--                    This is the fixed-rate substitute for wrk2, see docs/BENCHMARKS.md.
--
-- done() prints one parseable line:
--   BENCH_RESULT requests=… duration_us=… rps=… p50_us=… p90_us=… p99_us=… p999_us=… max_us=…
--                mean_us=… err_connect=… err_read=… err_write=… err_status=… err_timeout=…
-- and, in seq mode, each thread's count of answers that were not `"active":true`
-- (BENCH_INACTIVE), so a warm-up that silently failed is caught.

local mode = os.getenv("BENCH_MODE") or "get"
local order = os.getenv("BENCH_ORDER") or "random"
local gap_ms = tonumber(os.getenv("BENCH_GAP_MS") or "")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

local thread_counter = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_counter)
  thread_counter = thread_counter + 1
  table.insert(threads, thread)
end

local bodies = {}
local n = 0
local headers = {}
local path
-- Globals, so that done() can read them from each thread with thread:get().
next_index, last_index = 0, 0
pending = 0
inactive = 0
sent = 0
skipped = 0

local function proto_body(token)
  -- IntrospectRequest field 1 (token), wire type 2: tag 0x0A, varint length, bytes.
  local len = #token
  local varint
  if len < 128 then
    varint = string.char(len)
  else
    varint = string.char(len % 128 + 128, math.floor(len / 128))
  end
  return string.char(0x0A) .. varint .. token
end

function init(args)
  local id = wrk.thread:get("id")
  math.randomseed(os.time() * 1000 + id * 7919)
  if mode == "get" then
    path = wrk.path
    return
  end
  if mode == "cc" or mode == "issue" then
    n = 1
    headers["Authorization"] = os.getenv("BENCH_AUTH")
    if mode == "cc" then
      path = "/oauth2/token"
      headers["Content-Type"] = "application/x-www-form-urlencoded"
      bodies[1] = "grant_type=client_credentials"
    else
      path = "/tokend.v1.AdminService/IssueToken"
      headers["Content-Type"] = "application/json"
      bodies[1] = '{"client_id":"' .. os.getenv("BENCH_CLIENT") .. '"}'
    end
    return
  end
  local file = os.getenv("BENCH_TOKENS")
  local limit = tonumber(os.getenv("BENCH_COUNT") or "") or math.huge
  for line in io.lines(file) do
    if n >= limit then break end
    if #line > 0 then
      n = n + 1
      if mode == "proto" then
        bodies[n] = proto_body(line)
      elseif mode == "authz" then
        bodies[n] = "Bearer " .. line -- the per-request Authorization header, not a body
      else
        bodies[n] = "token=" .. line
      end
    end
  end
  if mode == "authz" then
    path = "/authz"
    headers["X-Tokend-Authorization"] = os.getenv("BENCH_AUTH")
    return
  end
  if mode == "proto" then
    path = "/tokend.v1.IntrospectionService/Introspect"
    headers["Content-Type"] = "application/proto"
  else
    path = "/oauth2/introspect"
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    if mode == "jwt" then headers["Accept"] = "application/token-introspection+jwt" end
  end
  headers["Authorization"] = os.getenv("BENCH_AUTH")
  if order == "seq" then
    local share = math.ceil(n / nthreads)
    next_index = id * share + 1
    last_index = math.min(n, (id + 1) * share)
    pending = last_index - next_index + 1
  end
end

function request()
  if mode == "get" then
    return wrk.format("GET", path)
  end
  local i
  if order == "seq" then
    if next_index > last_index then
      -- Share done: keep the connection busy with a cheap request until response() stops us.
      return wrk.format("GET", "/healthz")
    end
    i = next_index
    next_index = next_index + 1
    sent = sent + 1
  else
    i = math.random(n)
  end
  if mode == "authz" then
    headers["Authorization"] = bodies[i]
    return wrk.format("GET", path, headers)
  end
  return wrk.format("POST", path, headers, bodies[i])
end

if order == "seq" and mode ~= "get" then
  -- A thread is done when every request of its share has been answered, or, since wrk can drop
  -- a dynamically generated request when a write has to be retried (it then asks request() for a
  -- new one), once its share is sent and 2000 more answers (the /healthz fillers) have come in.
  function response(status, hdrs, body)
    if pending <= 0 then return end
    if body == '{"status":"ok"}' then
      skipped = skipped + 1
      if next_index <= last_index or skipped < 2000 then return end
      pending = 0
    else
      pending = pending - 1
      if status ~= 200 or (mode == "form" and not string.find(body, '"active":true', 1, true)) then
        inactive = inactive + 1
        if inactive <= 3 then
          io.write(string.format("BENCH_UNEXPECTED thread=%d status=%d body=%s\n", wrk.thread:get("id"), status,
            string.sub(body or "", 1, 200)))
        end
      end
    end
    if pending == 0 then
      local id = wrk.thread:get("id")
      io.write(string.format("BENCH_INACTIVE thread=%d inactive=%d\n", id, inactive))
      io.flush()
      -- wrk runs for its -d whatever its threads do; scripts/bench waits for one marker file
      -- per thread and then ends the run with SIGINT.
      local marker = os.getenv("BENCH_DONE_DIR")
      if marker then
        local f = io.open(string.format("%s/done.%d", marker, id), "w")
        if f then f:close() end
      end
      wrk.thread:stop()
    end
  end
end

if gap_ms and gap_ms > 0 then
  function delay()
    -- Exponential gaps (a Poisson arrival process per connection), rounded to whole ms at
    -- random so that the mean stays gap_ms.
    local x = -math.log(1 - math.random()) * gap_ms
    local whole = math.floor(x)
    if math.random() < x - whole then whole = whole + 1 end
    return whole
  end
end

function done(summary, latency, requests)
  if order == "seq" then
    for _, t in ipairs(threads) do
      io.write(string.format("BENCH_SEQ thread=%s sent=%s pending=%s skipped=%s\n",
        tostring(t:get("id")), tostring(t:get("sent")), tostring(t:get("pending")), tostring(t:get("skipped"))))
    end
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout))
end
