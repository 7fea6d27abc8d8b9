// A real AT Protocol network for the platform suite: a PLC directory (in-memory) and a PDS
// (SQLite under TMPDIR), from @atproto/dev-env, on the ports given. Prints one JSON line when
// ready; stops on SIGTERM or SIGINT, or when its standard input closes (its parent is gone).
import { TestNetworkNoAppView } from '@atproto/dev-env'

const [plcPort, pdsPort] = process.argv.slice(2).map(Number)
const network = await TestNetworkNoAppView.create({ plc: { port: plcPort }, pds: { port: pdsPort } })
let closing = false
const stop = async () => {
  if (closing) return
  closing = true
  await network.close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.resume()
console.log(JSON.stringify({ ready: true, pds: network.pds.url, plc: network.plc.url }))
