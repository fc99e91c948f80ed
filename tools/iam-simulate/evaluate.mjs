// Evaluate AWS requests against identity policies with @cloud-copilot/iam-simulate.
// stdin: {"cases": [{"id", "principal", "action", "resource", "accountId", "resourceAccount"?,
//          "context": {...}, "policies": [{"name", "policy"}], "resourcePolicy"?}]}
// stdout: {"results": [{"id", "decision", "errors"?}]}
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const { cases } = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const results = []
for (const c of cases) {
  const simulation = {
    identityPolicies: c.policies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: c.resourcePolicy,
    request: {
      principal: c.principal,
      action: c.action,
      resource: { resource: c.resource, accountId: c.resourceAccount || c.accountId },
      contextVariables: c.context || {},
    },
  }
  const response = await runSimulation(simulation, {})
  if (response.resultType === 'error') {
    results.push({ id: c.id, decision: 'Error', errors: response.errors })
  } else {
    const r = response.result
    results.push({ id: c.id, decision: r.analysis?.result ?? r.result ?? 'Unknown', raw: process.env.IAM_DEBUG ? r : undefined })
  }
}
process.stdout.write(JSON.stringify({ results }))
