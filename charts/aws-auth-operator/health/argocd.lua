-- Argo CD health check for aws-auth.dev/IamAccessGrant (argocd-cm:
-- resource.customizations.health.aws-auth.dev_IamAccessGrant).
-- Healthy: Ready=True for the current generation. Degraded: the operator refused the grant
-- (it stays out of aws-auth until the grant or aws-auth is fixed). Progressing: not decided yet.
local hs = { status = "Progressing", message = "Waiting for the operator to reconcile the grant" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    local current = generation == nil or (observed == generation and
      (c.observedGeneration == nil or c.observedGeneration == generation))
    if not current then
      hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
      return hs
    end
    local why = (c.reason or "") .. ": " .. (c.message or "")
    if c.status == "True" then
      hs.status = "Healthy"
    elseif c.reason == "Pending" or c.reason == nil or c.reason == "" then
      hs.status = "Progressing"
    else
      hs.status = "Degraded"
    end
    hs.message = why
    return hs
  end
end
return hs
