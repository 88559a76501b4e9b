// Tenant policies kept as files (config `policies.dir`, docs/OPERATIONS.md):
// one document per tenant, `<tenant>.yaml`, in the shape tenant.put-policy
// takes (docs/POLICY.md). kmsd applies them at start and on SIGHUP, each as
// an admin's put (a file may loosen a policy), so that configuration
// management can own the policies of the tenants it names:
// - all or nothing: every file is read and checked first (a trusted regular
//   file, a tenant that exists, a document that reads); when one fails,
//   nothing changes and the error names the file;
// - a file whose document is already in force changes nothing;
// - a tenant without a file keeps whatever policy it has (and
//   tenant.put-policy still works for every tenant).
// Trusted: the directory and its files are owned by root or by kmsd's uid,
// not writable by group or others, and not symbolic links. Other entries
// (names not ending in ".yaml", hidden files) are left alone.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/status.h"

namespace kmsd {

class KeyHierarchy;
class Recorder;
class TenantRules;

struct PolicyFilesOutcome {
  std::vector<std::string> applied;  // tenants whose policy changed
  size_t unchanged = 0;
};

// Called for each policy put (its audit entry): the tenant and the outcome.
using PolicyFileRecorder = std::function<void(std::string_view tenant, const Status& outcome)>;

// The recorder that writes each put's entry through the pipeline's record
// stage (the audit log): op tenant.put-policy, the caller kmsd itself (its
// uid and pid), allowed by its configuration (policies.dir).
PolicyFileRecorder RecordPolicyFilePuts(Recorder& recorder);

// INVALID_ARGUMENT (nothing applied) naming the directory or file at fault;
// a put that fails after the checks (the keystore) stops there with its
// error, the puts before it standing.
Result<PolicyFilesOutcome> ApplyPolicyFiles(const std::string& dir, TenantRules& rules,
                                            const KeyHierarchy& hierarchy,
                                            const PolicyFileRecorder& record);

}  // namespace kmsd
