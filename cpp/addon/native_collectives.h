// Collectives for JavaScript: the `collectives` object of the addon (ts/distributed/ is its one user), over
// the engine's collectives (cpp/collectives.h). Blocking calls run off the JS thread and return promises.
#pragma once
#include <napi.h>

namespace hayate::js {

// Adds exports.collectives: builtWithMpi, launcherWorldSize, init, world, allReduceSum, broadcast, barrier,
// allGather, abort, finalize.
void register_collectives(Napi::Env env, Napi::Object exports);

}  // namespace hayate::js
