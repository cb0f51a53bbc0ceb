use std::time::Duration;

use super::error::BackendResult;

/// What a console read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes were read into the buffer.
    Data(usize),
    /// Nothing arrived within the timeout.
    Idle,
    /// The domain is gone; the stream will give nothing more.
    Closed,
}

/// A two-way byte stream to a domain's console. The first reads replay what
/// the console has buffered since the domain was built, so a viewer opened
/// late still sees the boot log; after that, bytes arrive as the guest
/// writes them.
pub trait ConsoleStream: Send {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> BackendResult<ReadOutcome>;
    fn write(&mut self, bytes: &[u8]) -> BackendResult<()>;
    /// Tell the guest side the viewer's size, where the backend can.
    fn resize(&mut self, _cols: u16, _rows: u16) -> BackendResult<()> {
        Ok(())
    }

    /// A second handle that writes to this same console session, for a
    /// backend that allows one session per domain (libvirt): the reader
    /// and the writer then share it. `None`: open another for writing.
    fn writer(&self) -> Option<Box<dyn ConsoleStream>> {
        None
    }
}
