-- Replays prepared requests, each once: the file holds records separated by "\30"; a
-- record is its header lines, an empty line, then the body. Thread i of n sends records
-- i, i+n, i+2n, … Arguments: the file, the number of threads, the answer that means
-- accepted ("status:204" or "body:success"). done() prints how many answers were not
-- that, and how many records were sent twice because the file ran out (both must be 0
-- for a figure to count).
local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local prepared = {}
local position = 0
local wrapped = false
refused = 0
reused = 0
local want_status, want_body

local function split_record(record)
  local head, body = record:match("^(.-)\n\n(.*)$")
  local headers = {}
  for line in head:gmatch("[^\n]+") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  return headers, body
end

function init(args)
  local path, count, accepted = args[1], tonumber(args[2]), args[3]
  local kind, value = accepted:match("^(%a+):(.*)$")
  if kind == "status" then want_status = tonumber(value) else want_body = value end
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  local n = 0
  for record in data:gmatch("([^\30]+)") do
    if n % count == index then
      local headers, body = split_record(record)
      table.insert(prepared, wrk.format("POST", wrk.path, headers, body))
    end
    n = n + 1
  end
end

function request()
  position = position + 1
  if position > #prepared then
    position = 1
    wrapped = true
  end
  if wrapped then
    reused = reused + 1
  end
  return prepared[position]
end

function response(status, headers, body)
  if (want_status and status ~= want_status) or (want_body and body ~= want_body) then
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local total_refused, total_reused = 0, 0
  for _, thread in ipairs(threads) do
    total_refused = total_refused + thread:get("refused")
    total_reused = total_reused + thread:get("reused")
  end
  io.write(string.format("replay: refused=%d reused=%d\n", total_refused, total_reused))
end
