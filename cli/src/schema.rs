//! The shape of the messages shimctl prints as JSON, as a compact table that
//! `build.rs` writes from the vendored protos: for each message its fields
//! in declaration order (JSON order), with name, number and kind.
//!
//! One generic printer (`json::message`) walks a response's wire bytes with
//! it. Deriving a JSON serialiser per message cost several times as much
//! code as this table (about 8 bytes a field plus the names), and a static
//! binary pays for every byte (cli/README.md).

/// How a field is decoded and printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    U32,
    U64,
    /// `int32` and enums (printed as numbers, as Go prints gogo enums).
    I32,
    I64,
    F64,
    String,
    /// Only `Any.value` (no printed message has a bytes field of its own).
    Bytes,
    /// A nested message: [`Field::message`].
    Message,
    /// `google.protobuf.Any`: `type_url`, and `value` decoded when its type
    /// is in [`any_type`], else base64.
    Any,
    /// `google.protobuf.Timestamp`, printed as RFC 3339 like Go's `time.Time`.
    Timestamp,
}

/// Names a message in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MessageId(u8);

/// One field: 8 bytes, no pointers (pointers in static data cost a dynamic
/// relocation each in a static-pie binary).
#[derive(Debug)]
pub(crate) struct Field {
    /// Offset of the name in `NAMES`.
    name: u16,
    len: u8,
    number: u8,
    kind: Kind,
    /// The nested message's index, for [`Kind::Message`].
    msg: u8,
    repeated: bool,
}

/// A message: its fields are `FIELDS[first..first + count]`.
struct Message {
    first: u16,
    count: u8,
}

include!(concat!(env!("OUT_DIR"), "/schema.rs"));

impl Field {
    /// The JSON name (the proto field name, which is snake_case).
    pub(crate) fn name(&self) -> &'static str {
        let start = usize::from(self.name);
        NAMES
            .get(start..start + usize::from(self.len))
            .unwrap_or_default()
    }

    pub(crate) fn number(&self) -> u32 {
        u32::from(self.number)
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn is_repeated(&self) -> bool {
        self.repeated
    }

    /// The nested message of a [`Kind::Message`] field.
    pub(crate) fn message(&self) -> MessageId {
        MessageId(self.msg)
    }
}

impl MessageId {
    /// The fields, in declaration order.
    pub(crate) fn fields(self) -> &'static [Field] {
        MESSAGES
            .get(usize::from(self.0))
            .and_then(|m| {
                let first = usize::from(m.first);
                FIELDS.get(first..first + usize::from(m.count))
            })
            .unwrap_or_default()
    }

    /// The field numbered `number` and its position, if the message has it.
    pub(crate) fn field(self, number: u32) -> Option<(usize, &'static Field)> {
        self.fields()
            .iter()
            .enumerate()
            .find(|(_, f)| f.number() == number)
    }
}

/// The message an `Any` with this `type_url` holds, if it is one printed
/// decoded. Like Go's registry, only the part after the last `/` counts.
pub(crate) fn any_type(type_url: &str) -> Option<MessageId> {
    let name = type_url.rsplit('/').next().unwrap_or_default();
    ANY_TYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, id)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_and_lookups() {
        let names: Vec<&str> = TASK_STATE.fields().iter().map(Field::name).collect();
        assert_eq!(
            names,
            [
                "id",
                "bundle",
                "pid",
                "status",
                "stdin",
                "stdout",
                "stderr",
                "terminal",
                "exit_status",
                "exited_at",
                "exec_id"
            ]
        );
        let (i, f) = TASK_STATE.field(10).unwrap();
        assert_eq!((i, f.kind()), (9, Kind::Timestamp));
        assert!(TASK_STATE.field(12).is_none());
        let (_, stats) = TASK_STATS.field(1).unwrap();
        assert_eq!(stats.kind(), Kind::Any);
        let v2 = any_type("type.googleapis.com/io.containerd.cgroups.v2.Metrics").unwrap();
        let (_, cpu) = v2.field(2).unwrap();
        assert_eq!((cpu.name(), cpu.kind()), ("cpu", Kind::Message));
        let psi = cpu.message().field(7).unwrap().1.message();
        let avg10 = psi.field(1).unwrap().1.message().field(1).unwrap().1;
        assert_eq!((avg10.name(), avg10.kind()), ("avg10", Kind::F64));
        assert!(any_type("io.containerd.cgroups.v1.Metrics").is_some());
        assert!(any_type("containerd.runc.v1.ProcessDetails").is_some());
        assert!(any_type("example.com/Other").is_none());
        assert!(any_type("").is_none());
        let (_, procs) = TASK_PIDS.field(1).unwrap();
        assert!(procs.is_repeated());
        assert_eq!(V1_LIST_PIDS.fields().len(), 1);
        assert_eq!(V1_STATE.fields().len(), 10);
        assert_eq!(TASK_CONNECT.fields().len(), 3);
    }
}
