//! The model foundation: run-time device and precision ([`device`]), checkpoint loading from
//! real layouts ([`load`]) and the networks, starting with the T5 v1.1 text encoder ([`t5`]).

pub mod attention;
pub mod cogvideox;
pub mod device;
pub mod load;
pub mod opensora;
pub mod t5;
pub mod tora;

pub use device::{ComputeDevice, DeviceError, Precision};
pub use load::LoadError;
