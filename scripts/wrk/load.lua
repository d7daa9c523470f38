-- wrk script of scripts/load-notify.sh: an independent load generator for `jit serve`.
--
--   wrk -t2 -c32 -d10s -s scripts/wrk/load.lua URL -- MODE LABEL THREADS [FILE|TOKEN]

-- THREADS is wrk's -t again (each thread takes every THREADS-th line of FILE).
--
-- MODE is one of
--   distinct  POST each payment notify of FILE (one XML body per line) exactly once, the
--             lines shared out between the threads; a thread stops once every one of its
--             notifies is answered. The rate is taken from the first request to the last
--             answer (wrk's own duration also counts the time after the threads stopped).
--   repeat    POST the notifies of FILE again and again for the whole run (WeChat's
--             retries of payments already recorded).
--   create    POST a new order to PaySvc/create for the whole run (TOKEN: bearer token).
--   baseline  POST to an unknown element: the host alone (404).
-- Every answer is checked (SUCCESS reply, a created order, a 404); done() prints one line
--   RESULT LABEL REQUESTS RATE/s P50_MS P99_MS ERRORS
-- that scripts/load-notify.sh turns into its table.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } load_timespec;
int clock_gettime(int clock, load_timespec *out);
]]
local timespec = ffi.new("load_timespec")
local function now()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC: one clock for every thread
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) / 1e9
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local API = "/api/demo/shop"
local bodies = {}
-- Globals, so done() can read them from each thread (thread:get).
mode, label = nil, nil
sent, answered, errors = 0, 0, 0
first_sent, last_answer = 0, 0
local create_body = '{"subject": "wrk load", "amount": 0.01}'

function init(args)
  mode, label = args[1], args[2]
  local total = tonumber(args[3])
  local file, token = args[4], args[4]
  if mode == "distinct" or mode == "repeat" then
    local index = 0
    for line in io.lines(file) do
      if index % total == id then
        table.insert(bodies, line)
      end
      index = index + 1
    end
    wrk.method = "POST"
    wrk.path = API .. "/pays/services/PaySvc/wechatNotify"
    wrk.headers["Content-Type"] = "text/xml"
  elseif mode == "create" then
    wrk.method = "POST"
    wrk.path = API .. "/pays/services/PaySvc/create"
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Authorization"] = "Bearer " .. token
    wrk.body = create_body
  elseif mode == "baseline" then
    wrk.method = "POST"
    wrk.path = API .. "/load/baseline/unknownFunction"
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = "{}"
  else
    error("unknown mode " .. tostring(mode))
  end
end

function request()
  if first_sent == 0 then
    first_sent = now()
  end
  sent = sent + 1
  if mode == "distinct" or mode == "repeat" then
    -- Past its own notifies a distinct thread only has answers to wait for; what it
    -- sends meanwhile (at most its connections) is a repeat and is not counted.
    local body = bodies[((sent - 1) % #bodies) + 1]
    return wrk.format(nil, nil, nil, body)
  end
  return wrk.format()
end

function response(status, headers, body)
  local ok
  if mode == "distinct" or mode == "repeat" then
    ok = status == 200 and body:find("<return_code><![CDATA[SUCCESS]]></return_code>", 1, true)
  elseif mode == "create" then
    ok = status == 200 and body:find('"orderId"', 1, true)
  else
    ok = status == 404
  end
  if not ok then
    errors = errors + 1
    if errors <= 3 then
      print("unexpected answer: HTTP " .. status .. ": " .. body)
    end
  end
  if mode == "distinct" then
    if answered < #bodies then
      answered = answered + 1
      last_answer = now()
      if answered == #bodies then
        wrk.thread:stop()
      end
    end
  else
    answered = answered + 1
    last_answer = now()
  end
end

function done(summary, latency, requests)
  local count, errs, started, ended = 0, 0, nil, 0
  for _, thread in ipairs(threads) do
    count = count + thread:get("answered")
    errs = errs + thread:get("errors")
    local first = thread:get("first_sent")
    if first > 0 and (started == nil or first < started) then
      started = first
    end
    ended = math.max(ended, thread:get("last_answer"))
  end
  local mode = threads[1]:get("mode")
  local label = threads[1]:get("label")
  local seconds
  if mode == "distinct" then
    seconds = ended - (started or ended)
  else
    seconds = summary.duration / 1e6
    count = summary.requests
  end
  local rate = seconds > 0 and count / seconds or 0
  io.write(string.format("RESULT %s %d %.0f %.2f %.2f %d\n", label, count, rate,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errs + summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
