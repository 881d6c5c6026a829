//! `closed_label!`: an enum whose values are the only label values a metric may carry, with
//! its text, its position (to index pre-resolved series) and the list of all values. Every
//! closed label set of the crate is made with it, so none has a hand-written twin.

macro_rules! closed_label {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[repr(u8)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in label order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The metric label value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Position in [`Self::ALL`], for indexing pre-resolved metric handles.
            pub fn index(self) -> usize {
                self as usize
            }

            /// The value whose label text is `text` (as written in a checkpoint or log).
            pub fn from_label(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }
    };
}
