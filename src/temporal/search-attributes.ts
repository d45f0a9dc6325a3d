/** Our custom search attributes and their types, as the dev server's --search-attribute flag and operators name them. */
import { MIRROR_STATE_KEY, TENANT_ID_KEY } from '../../contract';

export const SEARCH_ATTRIBUTES: Record<string, 'Keyword'> = {
  [TENANT_ID_KEY.name]: 'Keyword',
  [MIRROR_STATE_KEY.name]: 'Keyword',
};
