//! The stable native-plugin ABI between the jit host and Type plugins loaded with libloading.
