#include "os/system.h"

#include <atomic>

namespace kmsd {
namespace {

std::atomic<System*>& Current() {
  static std::atomic<System*> current{&PlatformSystem()};
  return current;
}

}  // namespace

System& CurrentSystem() { return *Current().load(std::memory_order_acquire); }

TEST_ScopedSystem::TEST_ScopedSystem(System& system)
    : previous_(Current().exchange(&system, std::memory_order_acq_rel)) {}

TEST_ScopedSystem::~TEST_ScopedSystem() { Current().store(previous_, std::memory_order_release); }

}  // namespace kmsd
