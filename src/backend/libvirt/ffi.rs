//! The libvirt calls the `virt` crate does not wrap, or wraps in a way
//! domus cannot use: domain lifecycle events
//! (`virConnectDomainEventRegisterAny`), saving a domain to a file
//! (`virDomainSave`), and a non-blocking stream read that tells "would
//! block" from an error. The only unsafe code in domus; each block says
//! why it is sound.

use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::mpsc::Sender;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::stream::Stream;
use virt::sys;

/// One lifecycle event, as libvirt reported it: the domain by uuid (its
/// id is gone once it stops), `virDomainEventType` and its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub uuid: String,
    pub event: i32,
    pub detail: i32,
}

/// `virDomainEventType` values (libvirt's ABI).
pub const EVENT_SUSPENDED: i32 = 3;
pub const EVENT_RESUMED: i32 = 4;
pub const EVENT_STOPPED: i32 = 5;
pub const EVENT_CRASHED: i32 = 8;
/// `virDomainEventStoppedDetailType`.
pub const STOPPED_SHUTDOWN: i32 = 0;
pub const STOPPED_DESTROYED: i32 = 1;
pub const STOPPED_CRASHED: i32 = 2;

/// libvirt's lifecycle callback. Runs on libvirt's event loop thread; it
/// only sends, never calls back into libvirt, and never unwinds into C.
unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    event: c_int,
    detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    let _ = std::panic::catch_unwind(|| {
        // VIR_UUID_STRING_BUFLEN: 36 characters and a NUL.
        let mut buf = [0 as c_char; 37];
        // SAFETY: `dom` is valid for the duration of the callback (libvirt
        // owns it), and `buf` has the room virDomainGetUUIDString writes.
        if unsafe { sys::virDomainGetUUIDString(dom, buf.as_mut_ptr()) } != 0 {
            return;
        }
        // SAFETY: on success libvirt wrote a NUL-terminated string into
        // `buf`.
        let uuid = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: `opaque` is the `Sender` boxed by `register_lifecycle`,
        // freed only by `free_sender` after the callback is removed.
        let tx = unsafe { &*(opaque as *const Sender<Lifecycle>) };
        let _ = tx.send(Lifecycle {
            uuid,
            event,
            detail,
        });
    });
    0
}

/// Frees the callback's `Sender` (libvirt calls it once, when the callback
/// is removed or the connection closes); its receiver then ends.
unsafe extern "C" fn free_sender(opaque: *mut c_void) {
    if !opaque.is_null() {
        // SAFETY: `opaque` came from `Box::into_raw` in
        // `register_lifecycle`, and libvirt calls this exactly once.
        drop(unsafe { Box::from_raw(opaque as *mut Sender<Lifecycle>) });
    }
}

/// Send every domain's lifecycle events on `conn` to `tx` (they arrive
/// while libvirt's event loop runs). Returns the callback's id.
pub fn register_lifecycle(
    conn: &Connect,
    tx: Sender<Lifecycle>,
) -> Result<i32, virt::error::Error> {
    type Lifecycle5 = unsafe extern "C" fn(
        sys::virConnectPtr,
        sys::virDomainPtr,
        c_int,
        c_int,
        *mut c_void,
    ) -> c_int;
    type Generic = unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void);
    let opaque = Box::into_raw(Box::new(tx)) as *mut c_void;
    // SAFETY: libvirt calls a lifecycle callback with the five arguments
    // of `Lifecycle5`; its API takes it as the generic type and casts it
    // back by the event id (VIR_DOMAIN_EVENT_CALLBACK), as every binding
    // does. Both are `extern "C"` function pointers of the same size.
    let cb = unsafe { std::mem::transmute::<Lifecycle5, Generic>(on_lifecycle) };
    // SAFETY: `conn` is a live connection; a null domain means every
    // domain; `opaque` stays valid until libvirt calls `free_sender`.
    let id = unsafe {
        sys::virConnectDomainEventRegisterAny(
            conn.as_ptr(),
            std::ptr::null_mut(),
            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
            Some(cb),
            opaque,
            Some(free_sender),
        )
    };
    if id < 0 {
        // Not registered: libvirt did not take the sender.
        // SAFETY: `opaque` is the box made above, not handed out.
        drop(unsafe { Box::from_raw(opaque as *mut Sender<Lifecycle>) });
        return Err(virt::error::Error::last_error());
    }
    Ok(id)
}

/// Remove a callback `register_lifecycle` made (its sender is freed).
pub fn deregister(conn: &Connect, id: i32) {
    // SAFETY: `conn` is live; an id that is no longer registered is an
    // error libvirt reports, not undefined behaviour.
    let _ = unsafe { sys::virConnectDomainEventDeregisterAny(conn.as_ptr(), id) };
}

/// What a non-blocking `virStreamRecv` gave.
pub enum Recv {
    Data(usize),
    /// Nothing yet (-2).
    WouldBlock,
    /// The other end closed it (0).
    End,
    Failed,
}

/// Read what a non-blocking stream has (the `virt` crate folds "would
/// block" into its errors).
pub fn recv(stream: &Stream, buf: &mut [u8]) -> Recv {
    // SAFETY: `stream` is a live stream; libvirt writes at most
    // `buf.len()` bytes into `buf`.
    let n =
        unsafe { sys::virStreamRecv(stream.as_ptr(), buf.as_mut_ptr() as *mut c_char, buf.len()) };
    match n {
        0 => Recv::End,
        -2 => Recv::WouldBlock,
        n if n > 0 => Recv::Data((n as usize).min(buf.len())),
        _ => Recv::Failed,
    }
}

/// End a stream's session at once (`virStreamAbort`); the stream object
/// stays valid until its last reference goes.
pub fn abort(stream: &Stream) {
    // SAFETY: `stream` is a live stream; aborting one that is already
    // finished is an error libvirt reports, not undefined behaviour.
    let _ = unsafe { sys::virStreamAbort(stream.as_ptr()) };
}

/// Save a running domain's memory to `path` (libvirt's daemon writes it);
/// the domain stops.
pub fn save(domain: &Domain, to: &CString) -> Result<(), virt::error::Error> {
    // SAFETY: `domain` is a live domain object and `to` a NUL-terminated
    // string that outlives the call.
    if unsafe { sys::virDomainSave(domain.as_ptr(), to.as_ptr()) } < 0 {
        return Err(virt::error::Error::last_error());
    }
    Ok(())
}
