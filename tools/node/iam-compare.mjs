// Replays recorded IAM decisions (JSON lines written by keyline's
// internal/local/iam Recorder) through the independent IAM simulator
// @cloud-copilot/iam-simulate and reports every disagreement.
//
// Usage: node iam-compare.mjs <decisions.jsonl>   (or "-" / no argument: stdin)
// Prints:  iam decisions: N compared, M disagree
// Exit status: 0 when M = 0, 1 when some disagree, 2 on bad input.
//
// Each record is first run through runSimulation, which validates the
// policies, the action and the resource type; a validation error counts as
// a disagreement. The decision itself comes from the simulator's core
// authorize() with the recorded context passed as recorded (single values as
// strings, multivalued keys as arrays), because runSimulation drops context
// keys its service data does not list for the action, and it does not
// recognise the documented KMS key kms:EncryptionContext:<context-key> (its
// data spells the variable part with a colon, its matcher only looks for a
// slash), so it would evaluate encryption context conditions as if the key
// were absent, which AWS does not do. The number of records where the
// validated path dropped keys is reported. (The package's runUnsafeSimulation
// does the same as below but fails on any resource policy in this version: it
// loads the resource policy without a name.)
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { loadPolicy } from '@cloud-copilot/iam-policy'
import { runSimulation } from '@cloud-copilot/iam-simulate'

const engine = new URL('./node_modules/@cloud-copilot/iam-simulate/dist/esm/', import.meta.url)
const { authorize } = await import(new URL('core_engine/CoreSimulatorEngine.js', engine))
const { AwsRequestImpl } = await import(new URL('request/request.js', engine))
const { RequestContextImpl } = await import(new URL('requestContext.js', engine))
const { DiscoveryContextKeyConstraints } = await import(
  new URL('context_keys/discoveryContextKeyConstraints.js', engine)
)

// decide evaluates a simulation exactly as given, as runSimulation does after
// its validation, and returns 'Allowed', 'ExplicitlyDenied' or 'ImplicitlyDenied'.
function decide(sim) {
  const r = sim.request
  const request = new AwsRequestImpl(
    r.principal,
    { resource: r.resource.resource, accountId: r.resource.accountId },
    r.action,
    new RequestContextImpl(r.contextVariables)
  )
  const analysis = authorize({
    request,
    sessionPolicy: undefined,
    identityPolicies: sim.identityPolicies.map((p) => loadPolicy(p.policy, { name: p.name })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: sim.resourcePolicy
      ? loadPolicy(sim.resourcePolicy, { name: 'resource-policy' })
      : undefined,
    permissionBoundaries: undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: {
      simulationMode: 'Strict',
      discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([])
    },
    serviceSettings: { s3: {} }
  })
  return analysis.result
}


function simulation(rec) {
  return {
    request: {
      principal: rec.principal,
      action: rec.action,
      resource: { resource: rec.resource, accountId: rec.resourceAccount },
      contextVariables: rec.context ?? {}
    },
    identityPolicies: (rec.identityPolicies ?? []).map((p) => ({ name: p.name, policy: p.policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    ...(rec.resourcePolicy ? { resourcePolicy: rec.resourcePolicy.policy } : {})
  }
}

function ours(rec) {
  const d = rec.decision
  if (d.allowed) return 'Allowed'
  return d.reason === 'ExplicitDeny' ? 'ExplicitlyDenied' : 'ImplicitlyDenied'
}

async function main() {
  const arg = process.argv[2]
  const input = !arg || arg === '-' ? process.stdin : createReadStream(arg)
  const lines = createInterface({ input, crlfDelay: Infinity })
  let n = 0
  let lineNo = 0
  const disagreements = []
  const droppedKeys = new Map()
  let droppedRecords = 0
  for await (const line of lines) {
    lineNo++
    if (!line.trim()) continue
    let rec
    try {
      rec = JSON.parse(line)
    } catch (e) {
      console.error(`line ${lineNo}: not JSON: ${e.message}`)
      process.exitCode = 2
      return
    }
    n++
    const sim = simulation(rec)
    const want = ours(rec)
    const validated = await runSimulation(sim, {})
    if (validated.resultType === 'error') {
      disagreements.push({ line: lineNo, ours: want, simulator: 'input rejected', errors: validated.errors, record: rec })
      continue
    }
    const ignored = validated.result?.ignoredContextKeys ?? []
    if (ignored.length > 0) {
      droppedRecords++
      for (const k of ignored) droppedKeys.set(k, (droppedKeys.get(k) ?? 0) + 1)
    }
    const got = decide(sim)
    if (got !== want) {
      disagreements.push({ line: lineNo, ours: want, simulator: got, record: rec })
    }
  }
  for (const d of disagreements) {
    console.log(`disagree (line ${d.line}): ours ${d.ours}, simulator ${d.simulator}: ${JSON.stringify(d.errors ?? d.record)}`)
  }
  if (droppedRecords > 0) {
    const keys = [...droppedKeys.entries()].map(([k, c]) => `${k} (${c})`).join(', ')
    console.log(`note: the validated path would have dropped context keys in ${droppedRecords} records: ${keys}`)
  }
  console.log(`iam decisions: ${n} compared, ${disagreements.length} disagree`)
  // exitCode, not exit(): exit() would drop output still queued for a pipe.
  process.exitCode = disagreements.length === 0 ? 0 : 1
}

await main()
