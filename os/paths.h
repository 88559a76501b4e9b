// Path helpers shared by the modules that write files (the keystore's
// backups, kmsctl's outputs). Pure string work on the path's text, no I/O;
// safe from any thread.
#pragma once

#include <string>

namespace kmsd {

// The directory a file at `path` is (or would be created) in: "." for a bare
// name, "/" for a file in the root.
std::string DirectoryOf(const std::string& path);

}  // namespace kmsd
