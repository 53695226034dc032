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
            pub use crate::proto::update::UpdateTaskRequest;
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

/// `containerd.task.v2.UpdateTaskRequest` (and v3's), written by hand
/// (build.rs maps it here): prost-build makes `map<string, string>` a
/// `HashMap`, and the built-in shim, which only decodes this request to
/// answer `Unimplemented`, would pay several KiB of hash table and SipHash
/// code for it. Here the annotations are a list of entries, decoded with
/// prost's own functions in the order and with the checks and error
/// messages of its map decoding, so the shim's answers stay the same.
mod update {
    use prost::bytes::{Buf, BufMut};
    use prost::encoding::{DecodeContext, WireType, message, skip_field, string};
    use prost::{DecodeError, Message};

    use crate::wkt::Any;

    #[derive(Clone, PartialEq, Default, Debug)]
    pub struct UpdateTaskRequest {
        pub id: String,
        pub resources: Option<Any>,
        /// The map's entries in wire order (a repeated key is not merged).
        pub annotations: Vec<Annotation>,
    }

    /// One entry of a `map<string, string>`: key (1) and value (2).
    #[derive(Clone, PartialEq, Default, Debug)]
    pub struct Annotation(pub String, pub String);

    impl Message for Annotation {
        fn encode_raw(&self, buf: &mut impl BufMut) {
            if !self.0.is_empty() {
                string::encode(1, &self.0, buf);
            }
            if !self.1.is_empty() {
                string::encode(2, &self.1, buf);
            }
        }

        /// As prost's map entries: no field name added to errors.
        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: WireType,
            buf: &mut impl Buf,
            ctx: DecodeContext,
        ) -> Result<(), DecodeError> {
            match tag {
                1 => string::merge(wire_type, &mut self.0, buf, ctx),
                2 => string::merge(wire_type, &mut self.1, buf, ctx),
                _ => skip_field(wire_type, tag, buf, ctx),
            }
        }

        fn encoded_len(&self) -> usize {
            let len = |tag, s: &String| {
                if s.is_empty() {
                    0
                } else {
                    string::encoded_len(tag, s)
                }
            };
            len(1, &self.0) + len(2, &self.1)
        }

        fn clear(&mut self) {
            *self = Self::default();
        }
    }

    impl Message for UpdateTaskRequest {
        fn encode_raw(&self, buf: &mut impl BufMut) {
            if !self.id.is_empty() {
                string::encode(1, &self.id, buf);
            }
            if let Some(r) = &self.resources {
                message::encode(2, r, buf);
            }
            message::encode_repeated(3, &self.annotations, buf);
        }

        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: WireType,
            buf: &mut impl Buf,
            ctx: DecodeContext,
        ) -> Result<(), DecodeError> {
            let (result, field) = match tag {
                1 => (string::merge(wire_type, &mut self.id, buf, ctx), "id"),
                2 => {
                    let r = self.resources.get_or_insert_with(Any::default);
                    (message::merge(wire_type, r, buf, ctx), "resources")
                }
                // An entry is decoded as prost decodes a map's: the same
                // wire type and depth checks, the same loop.
                3 => {
                    let mut entry = Annotation::default();
                    let r = message::merge(wire_type, &mut entry, buf, ctx);
                    if r.is_ok() {
                        self.annotations.push(entry);
                    }
                    (r, "annotations")
                }
                _ => return skip_field(wire_type, tag, buf, ctx),
            };
            result.map_err(|mut e| {
                e.push("UpdateTaskRequest", field);
                e
            })
        }

        fn encoded_len(&self) -> usize {
            (if self.id.is_empty() {
                0
            } else {
                string::encoded_len(1, &self.id)
            }) + self
                .resources
                .as_ref()
                .map_or(0, |r| message::encoded_len(2, r))
                + message::encoded_len_repeated(3, &self.annotations)
        }

        fn clear(&mut self) {
            *self = Self::default();
        }
    }

    #[cfg(test)]
    mod tests {
        use std::collections::HashMap;

        use proptest::prelude::*;

        use super::{Annotation, Any, Message as _, UpdateTaskRequest as Ours};

        /// What prost-build generates for the message.
        #[derive(Clone, PartialEq, prost::Message)]
        struct UpdateTaskRequest {
            #[prost(string, tag = "1")]
            id: String,
            #[prost(message, optional, tag = "2")]
            resources: Option<Any>,
            #[prost(map = "string, string", tag = "3")]
            annotations: HashMap<String, String>,
        }

        fn same(bytes: &[u8]) {
            let ours = Ours::decode(bytes);
            let theirs = UpdateTaskRequest::decode(bytes);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => {
                    assert_eq!((&a.id, &a.resources), (&b.id, &b.resources));
                    let mut map = HashMap::new();
                    for Annotation(k, v) in &a.annotations {
                        map.insert(k.clone(), v.clone());
                    }
                    assert_eq!(map, b.annotations);
                    let back = UpdateTaskRequest::decode(&*a.encode_to_vec()).unwrap();
                    assert_eq!(&back, b);
                }
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                _ => panic!("{bytes:?}: {ours:?} / {theirs:?}"),
            }
        }

        #[test]
        fn decodes_as_the_generated_message() {
            same(b"\x0a\x01x\x1a\x06\x0a\x01k\x12\x01v\x1a\x03\x0a\x01k\x1a\x00");
            same(b"\x1a\x03\x0a\x01\xff");
            same(b"\x18\x03\x12\x01v");
            same(b"\x1a\x02\x0b\x00");
            // Nested groups in an entry: the recursion limit at the same depth.
            for depth in [97, 98, 99, 100] {
                let mut deep = vec![0x1a, depth];
                deep.extend(std::iter::repeat_n(0x1b, usize::from(depth)));
                same(&deep);
            }
        }

        proptest! {
            #[test]
            fn decodes_like_prost(parts in prop::collection::vec(prop_oneof![
                Just(vec![0x0a]), Just(vec![0x12]), Just(vec![0x1a]), Just(vec![0x18]),
                Just(vec![0x1b]), Just(vec![0x1c]), Just(vec![0x1d]), Just(vec![0x08]),
                Just(vec![0x0b]), Just(vec![0x0c]), Just(vec![0x20]), Just(vec![0xff]),
                Just(vec![0xc3, 0x28]), (0u8..8).prop_map(|n| vec![n]),
                prop::collection::vec(any::<u8>(), 0..4),
            ], 0..24)) {
                same(&parts.concat());
            }
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
