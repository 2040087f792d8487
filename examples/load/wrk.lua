-- wrk script for examples/load/run.sh.
--
--   wrk ... -s wrk.lua URL -- <token-file> [rotate]
--
-- Sends the first token of <token-file> as a bearer token on every
-- request, from one request built once. With "rotate", each request
-- takes the next token of the file instead, so that every request can
-- be a different user. If WRK_ROTATE_STATE names a file, the rotation
-- resumes where the previous run left it, so that a run never starts
-- with users the previous run has just put in the gateway's cache.
-- At the end it prints one RESULT line that run.sh parses.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local tokens = {}
-- rotate_next is global so that done() can read it from each thread
rotate_next = 1

local function read_state()
  local path = os.getenv("WRK_ROTATE_STATE")
  if path == nil or path == "" then
    return 0
  end
  local f = io.open(path, "r")
  if f == nil then
    return 0
  end
  local n = tonumber(f:read("*l") or "") or 0
  f:close()
  return n
end

function init(args)
  local path = args[1]
  if path == nil then
    error("usage: wrk ... -s wrk.lua URL -- <token-file> [rotate]")
  end
  for line in io.lines(path) do
    if #line > 0 then
      tokens[#tokens + 1] = line
    end
  end
  if #tokens == 0 then
    error("no tokens in " .. path)
  end
  wrk.headers["Accept"] = "application/json"
  wrk.headers["User-Agent"] = "dbnl-load/1"

  if args[2] == "rotate" then
    -- thread 0 resumes the saved position; the others start spread
    -- over the file
    local id = tonumber(wrk.thread:get("id")) or 0
    rotate_next = (read_state() + id * 7919) % #tokens + 1
    local headers = {}
    for k, v in pairs(wrk.headers) do
      headers[k] = v
    end
    request = function()
      headers["Authorization"] = "Bearer " .. tokens[rotate_next]
      rotate_next = rotate_next % #tokens + 1
      return wrk.format(nil, nil, headers)
    end
  else
    -- no request function: wrk builds the request once
    wrk.headers["Authorization"] = "Bearer " .. tokens[1]
  end
end

function done(summary, latency, requests)
  local state = os.getenv("WRK_ROTATE_STATE")
  if state ~= nil and state ~= "" and threads[1] ~= nil then
    local n = tonumber(threads[1]:get("rotate_next"))
    if n ~= nil then
      local f = assert(io.open(state, "w"))
      f:write(string.format("%d\n", n - 1))
      f:close()
    end
  end

  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d " ..
    "non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
