//! The generated shim API: messages (prost) and ttrpc stubs (ttrpc-core
//! codegen), one module per proto package, nested as prost-build expects.

#![allow(
    missing_docs,
    unreachable_pub,
    dead_code,
    clippy::all,
    clippy::pedantic,
    clippy::use_self
)]

pub mod containerd {
    pub mod task {
        /// `containerd.task.v2.Task` (containerd 1.6/1.7 shims).
        pub mod v2 {
            include!(concat!(env!("OUT_DIR"), "/containerd.task.v2.rs"));
        }
        /// `containerd.task.v3.Task` (containerd 2.x shims): the service
        /// only; its messages are task v2's.
        pub mod v3 {
            include!(concat!(env!("OUT_DIR"), "/containerd.task.v3.rs"));
        }
    }
    pub mod types {
        include!(concat!(env!("OUT_DIR"), "/containerd.types.rs"));
    }
    pub mod v1 {
        pub mod types {
            include!(concat!(env!("OUT_DIR"), "/containerd.v1.types.rs"));
        }
    }
    pub mod runtime {
        pub mod linux {
            pub mod shim {
                /// `containerd.runtime.linux.shim.v1.Shim` (`containerd-shim`).
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/containerd.runtime.linux.shim.v1.rs"
                    ));
                }
            }
        }
    }
    pub mod runc {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/containerd.runc.v1.rs"));
        }
    }
}

pub mod io {
    pub mod containerd {
        pub mod cgroups {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/io.containerd.cgroups.v1.rs"));
            }
            pub mod v2 {
                include!(concat!(env!("OUT_DIR"), "/io.containerd.cgroups.v2.rs"));
            }
        }
    }
}

pub use containerd::runtime::linux::shim::v1 as shim_v1;
pub use containerd::task::v2 as task;
pub use containerd::task::v3 as task_v3;
