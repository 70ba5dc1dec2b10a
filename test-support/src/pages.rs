//! Every page of a room or of a scan, for tests that check how a store pages.
//!
//! Only tests read a whole room: the library never holds one in memory, the engine works one
//! page at a time. So these helpers live here, not in `fanout`.

use fanout::domain::{RoomName, Segment};
use fanout::ports::{ConnectionStore, Page, StoreError};

/// More pages than any test's room or table needs: past it, paging does not end.
const MAX_PAGES: usize = 1000;

/// The room's pages, first to last, as the worker reads them.
pub async fn room_pages<S>(store: &S, room: &RoomName) -> Vec<Page>
where
    S: ConnectionStore + ?Sized,
{
    all_pages(async |cursor| store.room_page(room, cursor, None).await).await
}

/// The pages of each of `total` scan segments in turn: the whole table.
pub async fn scan_pages<S>(store: &S, total: u32) -> Vec<Page>
where
    S: ConnectionStore + ?Sized,
{
    let mut pages = Vec::new();
    for index in 0..total {
        let segment = Segment { index, total };
        pages.extend(all_pages(async |cursor| store.scan_page(segment, cursor).await).await);
    }
    pages
}

/// The ids on `pages`, in order.
pub fn ids(pages: Vec<Page>) -> Vec<String> {
    pages.into_iter().flat_map(|page| page.ids).collect()
}

/// Follows the cursors from the first page to the last; panics on a store error.
async fn all_pages(
    mut fetch: impl AsyncFnMut(Option<&str>) -> Result<Page, StoreError>,
) -> Vec<Page> {
    let mut pages: Vec<Page> = Vec::new();
    loop {
        let cursor = pages.last().and_then(|page| page.next.clone());
        let page = fetch(cursor.as_deref())
            .await
            .unwrap_or_else(|error| panic!("reading page {}: {error}", pages.len() + 1));
        let last = page.next.is_none();
        pages.push(page);
        if last {
            return pages;
        }
        assert!(
            pages.len() < MAX_PAGES,
            "paging does not end: {MAX_PAGES} pages"
        );
    }
}
